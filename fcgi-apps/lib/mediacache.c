/* mediacache: the key of a medium's cached row, and its deletion. */
#include "mediacache.h"

#include <stdio.h>
#include <string.h>

#include "cache.h"

/* keys per DEL: cache_cmd takes at most 64 arguments, "DEL" is one */
#define FORGET_BATCH 63

char *mediacache_key(char *buf, size_t size, const char *id)
{
	int n = snprintf(buf, size, MEDIACACHE_PREFIX "%s", id);

	return (n < 0 || (size_t)n >= size) ? NULL : buf;
}

int mediacache_forget(const char *const *ids, size_t n)
{
	char keys[FORGET_BATCH][MEDIACACHE_KEY_MAX];
	const char *argv[FORGET_BATCH + 1];
	struct cache_reply *r;
	size_t i = 0, k;
	int ok;

	while (i < n) {
		argv[0] = "DEL";
		for (k = 0; k < FORGET_BATCH && i < n; k++, i++) {
			if (!mediacache_key(keys[k], sizeof(keys[k]), ids[i]))
				return -1;
			argv[k + 1] = keys[k];
		}
		r = cache_cmd((int)k + 1, argv, NULL);
		if (!r)
			return -1;
		ok = cache_reply_type(r) == CACHE_INT;
		cache_reply_free(r);
		if (!ok)
			return -1;
	}
	return 0;
}
