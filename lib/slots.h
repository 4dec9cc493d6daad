/* slots: a host-wide limit on how many processes run a section at once.
 *
 * For CPU- and memory-heavy work that gains nothing from running on more
 * processes than there are cores: argon2id password hashes (19 MiB each).
 * The auth pool has more workers than cores so that database and Redis
 * waits overlap; if all of them hash at once, the hashes evict each other
 * from the caches and take turns on the cores, and each one costs more CPU.
 * With a slot per core, a worker that would be the third to hash waits
 * until one of the two running hashes is done.
 *
 * The state lives in a small file mapped by every process that opens it
 * (like metrics.c), holding a process-shared robust mutex, a futex word
 * waiters sleep on, and the pid of each holder.  A holder that dies without
 * releasing (SIGKILL, a crash) loses its slot to a waiter, which looks for
 * dead holders' pids at least every SLOTS_RECHECK_MS while it waits; a
 * process that dies inside the (short) critical section leaves the mutex to
 * the next locker (EOWNERDEAD), which goes on: the holder table is written
 * one aligned word at a time, so it is never half-updated.
 *
 * Each opener states its own limit: acquiring waits while the number of
 * live holders (of any opener) is at or above the caller's limit.
 *
 * Bounds: limits 1..SLOTS_MAX; waits end after the caller's timeout. */
#ifndef TH_SLOTS_H
#define TH_SLOTS_H

#define SLOTS_MAX 64
#define SLOTS_RECHECK_MS 100

struct slots;

/* Maps (creating it if needed) the slot file at path, for a caller allowed
 * `limit` holders at once.  NULL with errno set on failure (EINVAL: limit
 * outside 1..SLOTS_MAX).  Free with slots_close() (NULL is fine). */
struct slots *slots_open(const char *path, int limit);
void slots_close(struct slots *s);

/* Waits at most timeout_ms for a slot.  Returns the slot's index (>= 0), to
 * hand back to slots_release(), or -1 with errno ETIMEDOUT (no slot within
 * the time) or another errno (the mutex failed).  *waited is set to 1 when
 * the caller had to wait for a slot, else 0 (may be NULL). */
int slots_acquire(struct slots *s, long timeout_ms, int *waited);

/* Gives back the slot acquire returned; wakes one waiter.  Every successful
 * slots_acquire() must be followed by exactly one slots_release(). */
void slots_release(struct slots *s, int slot);

/* Live holders right now (tests, metrics); -1 if the mutex failed. */
int slots_busy(struct slots *s);

#endif
