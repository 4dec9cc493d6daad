/* mono: the monotonic clock in milliseconds, for timeouts, back-off and
 * cache lifetimes (never wall time: it does not jump when the clock is set). */
#ifndef TH_MONO_H
#define TH_MONO_H

#include <stdint.h>

/* Milliseconds since an arbitrary start (CLOCK_MONOTONIC). */
uint64_t mono_ms(void);

#endif
