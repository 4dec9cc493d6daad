/* idcache: a small, bounded, per-process cache of byte strings keyed by a
 * positive id (a user id), each entry trusted for a fixed time.
 *
 * For answers that cost a database round trip but change rarely (GET
 * /api/auth/me: the caller's own user row).  Nothing is shared between
 * processes: each worker holds its own copy, so a change made through one
 * worker is seen by the others only when their entries expire.  A caller
 * picks the lifetime that makes that acceptable and calls idcache_forget()
 * in the process that changes the row.
 *
 * Bounds: nslots slots (at most IDCACHE_MAX_SLOTS), each holding one value
 * of at most IDCACHE_VALUE_MAX bytes; all memory is allocated by
 * idcache_new() and nothing grows afterwards (nslots * ~1 KiB).  Slots are
 * direct-mapped by id: two ids of one slot evict each other.  Every lookup
 * compares the stored id, so a slot never answers for an id it was not
 * filled for.
 *
 * Time is passed in by the caller (milliseconds of any monotonic clock), so
 * expiry is testable without sleeping. */
#ifndef TH_IDCACHE_H
#define TH_IDCACHE_H

#include <stddef.h>
#include <stdint.h>

#define IDCACHE_VALUE_MAX 1024
#define IDCACHE_MAX_SLOTS 65536

struct idcache;

/* A cache of nslots slots (1..IDCACHE_MAX_SLOTS) whose entries live ttl_ms
 * (1..3600000) milliseconds.  NULL on bad arguments or out of memory.  The
 * caller owns it and frees it with idcache_free() (NULL is fine). */
struct idcache *idcache_new(size_t nslots, uint64_t ttl_ms);
void idcache_free(struct idcache *c);

/* The value stored for id if it was stored less than ttl_ms before now_ms,
 * with its length in *len; else NULL.  The bytes belong to the cache and stay
 * valid until the next idcache_put() or idcache_forget() on this cache:
 * copy them (or send them) before touching it again. */
const char *idcache_get(struct idcache *c, int64_t id, uint64_t now_ms, size_t *len);

/* Stores a copy of len bytes for id (id > 0), replacing whatever the slot
 * held.  0, or -1 when id <= 0 or len > IDCACHE_VALUE_MAX: then nothing is
 * stored and an older value of id is dropped; the caller simply does without
 * the cache for this value. */
int idcache_put(struct idcache *c, int64_t id, uint64_t now_ms, const char *val, size_t len);

/* Drops the entry of id, if held. */
void idcache_forget(struct idcache *c, int64_t id);

#endif
