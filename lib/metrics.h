/* metrics: per-route counters and latency histograms, summed over all workers
 * of a pool.
 *
 * Workers of one pool are separate processes started by multiwatch, so the
 * numbers live in a file mapped MAP_SHARED by every worker of the pool
 * ($TH_VAR_DIR/run/<pool>.metrics) and are updated with relaxed atomic adds.
 * The file has a fixed size, so a worker of a newer build (another route
 * table) never truncates what an older one still maps.  Each worker also owns
 * a slot (pid, start time, requests served) for `fcgi-pool status`. */
#ifndef TH_METRICS_H
#define TH_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "arena.h"

#define METRICS_MAX_ROUTES 128
#define METRICS_LABEL 96
#define METRICS_BUCKETS 12 /* finite bounds; +Inf is the count */
#define METRICS_SLOTS 256
#define METRICS_COUNTERS 32
#define METRICS_COUNTER_NAME 64

/* Maps path (creating it), labels routes 0..n-1 with labels[i] (resetting a
 * route whose label changed), and claims a worker slot.  Returns 0 or -1. */
int metrics_open(const char *path, const char *pool, const char *const *labels, size_t n);
/* Releases the slot and unmaps.  Safe when not open. */
void metrics_close(void);

/* Counts one request of route idx with its status and duration. */
void metrics_observe(size_t idx, int status, uint64_t duration_us);

/* Index of a named counter ("cache_hits_total"), registering it; -1 when full
 * or not open.  Call at start-up; metrics_add() is then one atomic add. */
int metrics_counter(const char *name);
void metrics_add(int counter, uint64_t n);
/* Sets a named value (a gauge: rendered as such when its name does not end
 * in "_total"). */
void metrics_set(int counter, uint64_t value);

/* Prometheus text of the whole pool, into the arena.  NULL when not open. */
char *metrics_render(struct arena *a, size_t *len);
/* Prometheus text of another metrics file (the bridge's, served by the
 * realtime app).  NULL when it cannot be read. */
char *metrics_render_file(struct arena *a, const char *path, size_t *len);

/* For th-poolstat: calls fn for each live worker slot of the file at path.
 * Returns the number of workers, or -1 when the file cannot be read. */
int metrics_workers(const char *path,
		    void (*fn)(int pid, int64_t started, uint64_t requests, void *ctx), void *ctx);

/* Bucket upper bounds in microseconds (exported for tests). */
extern const uint64_t metrics_bounds_us[METRICS_BUCKETS];

#endif
