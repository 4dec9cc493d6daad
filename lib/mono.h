/* mono: the monotonic clock, the one clock of the apps, for timeouts,
 * back-off, cache lifetimes and timings (never wall time: it does not jump
 * when the clock is set). */
#ifndef TH_MONO_H
#define TH_MONO_H

#include <stdint.h>

/* Milliseconds since an arbitrary start (CLOCK_MONOTONIC). */
uint64_t mono_ms(void);
/* Microseconds since the same start (request timings). */
uint64_t mono_us(void);

#endif
