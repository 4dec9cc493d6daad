/* idcache: fixed slots, direct-mapped by a mix of the id. */
#include "idcache.h"

#include <stdlib.h>
#include <string.h>

struct idcache_slot {
	int64_t id;         /* 0: empty */
	uint64_t stored_ms; /* when the value was stored */
	size_t len;
	char val[IDCACHE_VALUE_MAX];
};

struct idcache {
	size_t nslots;
	uint64_t ttl_ms;
	struct idcache_slot slots[]; /* nslots of them */
};

/* Ids are sequential: a multiplicative mix spreads neighbours over the slots
 * instead of relying on the table size. */
static size_t slot_of(const struct idcache *c, int64_t id)
{
	uint64_t h = (uint64_t)id * 0x9e3779b97f4a7c15ull;

	return (size_t)((h >> 32) % c->nslots);
}

struct idcache *idcache_new(size_t nslots, uint64_t ttl_ms)
{
	struct idcache *c;

	if (nslots == 0 || nslots > IDCACHE_MAX_SLOTS || ttl_ms == 0 || ttl_ms > 3600000)
		return NULL;
	/* calloc: every slot starts empty (id 0) */
	c = calloc(1, sizeof(*c) + nslots * sizeof(c->slots[0]));
	if (!c)
		return NULL;
	c->nslots = nslots;
	c->ttl_ms = ttl_ms;
	return c;
}

void idcache_free(struct idcache *c)
{
	free(c);
}

const char *idcache_get(struct idcache *c, int64_t id, uint64_t now_ms, size_t *len)
{
	struct idcache_slot *s;

	if (id <= 0)
		return NULL;
	s = &c->slots[slot_of(c, id)];
	if (s->id != id)
		return NULL;
	/* a clock that went backwards (it should not: monotonic) counts as
	 * expired rather than as fresh for ever */
	if (now_ms < s->stored_ms || now_ms - s->stored_ms >= c->ttl_ms) {
		s->id = 0;
		return NULL;
	}
	*len = s->len;
	return s->val;
}

int idcache_put(struct idcache *c, int64_t id, uint64_t now_ms, const char *val, size_t len)
{
	struct idcache_slot *s;

	if (id <= 0)
		return -1;
	if (len > IDCACHE_VALUE_MAX) {
		/* an older, shorter value of id must not outlive this one */
		idcache_forget(c, id);
		return -1;
	}
	s = &c->slots[slot_of(c, id)];
	memcpy(s->val, val, len);
	s->len = len;
	s->stored_ms = now_ms;
	s->id = id;
	return 0;
}

void idcache_forget(struct idcache *c, int64_t id)
{
	struct idcache_slot *s;

	if (id <= 0)
		return;
	s = &c->slots[slot_of(c, id)];
	if (s->id == id)
		s->id = 0;
}
