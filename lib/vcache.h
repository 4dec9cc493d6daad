/* vcache: the generic half of a cache under versioned keys in Redis.
 *
 * A family of entries (a community's feed pages, its access verdicts, …)
 * shares one version key; every entry's key carries the version it was
 * stored under ("…:v<version>:…").  A write bumps the version after its
 * commit and before its reply: every entry of the old version is unreachable
 * at once and dies with its TTL, so the very next read misses and fills
 * from PostgreSQL.  A reader takes the version before it reads PostgreSQL,
 * so what it stores under that version was read after the version was made.
 *
 * A missing version (new family, Redis flushed, key evicted) is set to a
 * fresh one (the wall clock in microseconds), never back to a small number
 * an older, still-living entry may carry; a bump INCRs an existing version.
 *
 * A bump Redis did not take cannot make entries unreachable: it is logged,
 * kept (at most VCACHE_PENDING_MAX, the oldest dropped first) and tried again
 * before this worker's next bump or vcache_retry() (a reader calls it before
 * trusting a version); until then other workers may serve the old version
 * for at most the entries' TTL.  Not thread-safe (one per worker). */
#ifndef TH_VCACHE_H
#define TH_VCACHE_H

#include <stddef.h>

#include "arena.h"

#define VCACHE_PENDING_MAX 64
#define VCACHE_KEY_MAX 128

/* The version key of a community's feed pages and posts (the community
 * app's feedcache.c), a printf format of the community id (long long): the
 * media app bumps it too, when a medium that posts show is deleted. */
#define VCACHE_FEED_KEY "th:feedver:{c%lld}"

/* A version no living entry can carry, as text (at most 20 digits). */
void vcache_fresh_version(char buf[24]);

/* Bumps the version key `key` (at most VCACHE_KEY_MAX - 1 bytes); never
 * fails the caller (see above). */
void vcache_bump(const char *key);

/* Tries the bumps that failed before again, oldest first (cheap when none
 * are pending). */
void vcache_retry(void);

/* Bumps still waiting for Redis. */
int vcache_pending(void);

/* SET key (a followed by b) EX ttl_s; a failure is logged, nothing else
 * (a cache that could not store only misses again).  The value is built in
 * the arena. */
void vcache_store(struct arena *ar, const char *key, const char *a, size_t alen, const char *b,
		  size_t blen, long ttl_s);

/* dst (size bytes) = prefix + the version (vlen bytes, not terminated) +
 * suffix; "" when it does not fit.  By memcpy: a cache hit builds several. */
void vcache_key(char *dst, size_t size, const char *prefix, const char *ver, size_t vlen,
		const char *suffix);

#endif
