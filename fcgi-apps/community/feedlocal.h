/* feedlocal: the worker's own copies of feedcache entries (feedcache.c).
 *
 * A hit of a feed page sent its whole entry (7 KB for 20 short posts) from
 * Redis on every request, which cost more than the rest of the request.  A
 * worker keeps the last entries it read or stored, each with its feed
 * version, and feedcache.c sends that version with the lookup: when it is
 * still the community's version Redis does not send the entry again.  The
 * copy is used only on that answer, so every bump reaches it at once, and
 * nothing of it is used while Redis does not answer.  An entry never changes
 * under one version, so a copy is exactly what Redis holds; copies also
 * expire with the entries' TTL (the signed media URLs inside must not outlive
 * theirs).
 *
 * Bounded: FEEDLOCAL_SLOTS slots, direct-mapped by name, entries of at most
 * FEEDLOCAL_MAX_BYTES; process-lifetime heap memory, replaced in place.  Not
 * thread-safe: one worker process, one request at a time. */
#ifndef TH_FEEDLOCAL_H
#define TH_FEEDLOCAL_H

#include <stddef.h>
#include <stdint.h>

#include "posts.h"

#define FEEDLOCAL_SLOTS 32
#define FEEDLOCAL_MAX_BYTES (256 * 1024)

/* One slot.  Callers may read every field and set aver; data belongs to the
 * slot (freed by the next feedlocal_put() to it, or by feedlocal_drop()). */
struct feedlocal {
	char name[FEEDCACHE_KEY]; /* the entry's key without its version: prefix + suffix */
	char ver[24];
	char aver[24]; /* the community's access version last seen with it ("": none) */
	char *data;    /* "<ids>\n<json>", malloc'd, owned by the slot */
	int checked;   /* one my_reactions:[] per id, in a well-formed entry */
	size_t len;
	uint64_t expires_ms;
};

/* The copy of name, or NULL when there is none or it expired.  Borrowed:
 * valid until the next feedlocal_put() or feedlocal_drop(). */
struct feedlocal *feedlocal_get(const char *name);

/* Keeps a copy of an entry just read from or stored to Redis: the bytes a
 * (alen) then b (blen), under name and the feed version ver (vlen bytes, not
 * terminated), for ttl_s seconds; aver is reset.  Silently keeps nothing when
 * the entry is too large, a name or version too long, or out of memory: it is
 * only a copy, the next hit asks Redis for the entry. */
void feedlocal_put(const char *name, const char *ver, size_t vlen, const char *a, size_t alen,
		   const char *b, size_t blen, long ttl_s);

/* Forgets the copy l (a malformed entry): the next lookup reads Redis. */
void feedlocal_drop(struct feedlocal *l);

#endif
