/* fmetrics: the front's /metrics page, Prometheus text summed over its
 * workers from shared memory (shm.h). */
#ifndef TH_FMETRICS_H
#define TH_FMETRICS_H

#include <stddef.h>

#include "shm.h"

/* *text: a heap block the caller frees, *len its length.  0 or -1 (no memory). */
int fmetrics_render(struct shm *s, char **text, size_t *len);

#endif
