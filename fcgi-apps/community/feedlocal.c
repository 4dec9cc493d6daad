/* feedlocal: the worker's own copies of feedcache entries (see feedlocal.h). */
#include "feedlocal.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "feedmine.h"
#include "mono.h"

static struct feedlocal locals[FEEDLOCAL_SLOTS];

static struct feedlocal *slot(const char *name)
{
	uint32_t h = 2166136261u;

	for (const char *p = name; *p; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	return &locals[h % FEEDLOCAL_SLOTS];
}

struct feedlocal *feedlocal_get(const char *name)
{
	struct feedlocal *l = slot(name);

	if (!l->data || strcmp(l->name, name) != 0 || mono_ms() >= l->expires_ms)
		return NULL;
	return l;
}

void feedlocal_put(const char *name, const char *ver, size_t vlen, const char *a, size_t alen,
		   const char *b, size_t blen, long ttl_s)
{
	struct feedlocal *l = slot(name);
	char *d;

	if (alen + blen > FEEDLOCAL_MAX_BYTES || vlen >= sizeof(l->ver) ||
	    strlen(name) >= sizeof(l->name))
		return;
	d = malloc(alen + blen + 1);
	if (!d)
		return; /* only a copy: the next hit asks Redis for the entry */
	memcpy(d, a, alen);
	memcpy(d + alen, b, blen);
	d[alen + blen] = '\0';
	free(l->data);
	l->data = d;
	l->len = alen + blen;
	snprintf(l->name, sizeof(l->name), "%s", name);
	memcpy(l->ver, ver, vlen);
	l->ver[vlen] = '\0';
	l->aver[0] = '\0';
	l->checked = feedmine_shape_ok(d, l->len);
	l->expires_ms = mono_ms() + (uint64_t)(ttl_s > 0 ? ttl_s : 0) * 1000u;
}

void feedlocal_drop(struct feedlocal *l)
{
	if (!l)
		return;
	free(l->data);
	l->data = NULL;
}
