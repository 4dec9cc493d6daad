/* vcache: versioned keys — fresh versions, bumps that survive a Redis
 * outage, stores with a TTL. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cache.h"
#include "log.h"
#include "vcache.h"

/* KEYS[1] version key, ARGV[1] a fresh version for a missing one. */
static const char bump_lua[] = "if redis.call('EXISTS', KEYS[1]) == 1 then "
			       "  return redis.call('INCR', KEYS[1]) "
			       "end "
			       "redis.call('SET', KEYS[1], ARGV[1]) "
			       "return tonumber(ARGV[1])";

static struct cache_script bump_script = {bump_lua, ""};

static char pending[VCACHE_PENDING_MAX][VCACHE_KEY_MAX];
static int npending;

void vcache_fresh_version(char buf[24])
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	snprintf(buf, 24, "%lld", (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000);
}

/* 0 when Redis took the bump, -1 otherwise. */
static int bump_once(const char *key)
{
	char fresh[24];
	const char *argv[] = {NULL, NULL, "1", key, fresh};
	struct cache_reply *r;
	int ok;

	vcache_fresh_version(fresh);
	r = cache_script_run(&bump_script, 5, argv);
	ok = r && cache_reply_type(r) == CACHE_INT;
	if (!ok)
		log_warn("vcache: bump of %s failed (%s): cached reads may be stale until it "
			 "succeeds or they expire",
			 key, r ? cache_reply_str(r, NULL) : cache_last_error());
	cache_reply_free(r);
	return ok ? 0 : -1;
}

void vcache_retry(void)
{
	int i, kept = 0;

	if (!npending)
		return;
	for (i = 0; i < npending; i++) {
		/* once Redis refused one, the others would wait for the same timeout */
		if (kept || bump_once(pending[i]) < 0) {
			if (kept != i)
				memcpy(pending[kept], pending[i], VCACHE_KEY_MAX);
			kept++;
		}
	}
	if (kept < npending)
		log_info("vcache: %d delayed bump(s) done, %d still pending", npending - kept,
			 kept);
	npending = kept;
}

int vcache_pending(void)
{
	return npending;
}

void vcache_bump(const char *key)
{
	int i;

	if (strlen(key) >= VCACHE_KEY_MAX) {
		log_error("vcache: version key too long: %.40s…", key);
		return;
	}
	vcache_retry();
	if (bump_once(key) == 0)
		return;
	for (i = 0; i < npending; i++)
		if (strcmp(pending[i], key) == 0)
			return;
	if (npending == VCACHE_PENDING_MAX) {
		log_error("vcache: %d bumps pending, dropping the oldest (%s): its cached reads "
			  "stay stale until they expire",
			  VCACHE_PENDING_MAX, pending[0]);
		memmove(pending, pending + 1, sizeof(pending[0]) * (VCACHE_PENDING_MAX - 1));
		npending--;
	}
	snprintf(pending[npending], VCACHE_KEY_MAX, "%s", key);
	npending++;
}

void vcache_store(struct arena *ar, const char *key, const char *a, size_t alen, const char *b,
		  size_t blen, long ttl_s)
{
	char ttl[24], *v = arena_alloc(ar, alen + blen + 1);
	const char *argv[] = {"SET", key, v, "EX", ttl};
	size_t lens[] = {3, strlen(key), alen + blen, 2, 0};
	struct cache_reply *r;

	if (!v) {
		log_warn("vcache: out of memory storing %s", key);
		return;
	}
	memcpy(v, a, alen);
	memcpy(v + alen, b, blen);
	snprintf(ttl, sizeof(ttl), "%ld", ttl_s);
	lens[4] = strlen(ttl);
	r = cache_cmd(5, argv, lens);
	if (r && cache_reply_type(r) == CACHE_ERROR)
		log_warn("vcache: SET %s: %s", key, cache_reply_str(r, NULL));
	cache_reply_free(r);
}

void vcache_key(char *dst, size_t size, const char *prefix, const char *ver, size_t vlen,
		const char *suffix)
{
	size_t pl = strlen(prefix), sl = strlen(suffix);

	if (pl + vlen + sl >= size) {
		dst[0] = '\0'; /* the callers' ids and versions fit: cannot happen */
		return;
	}
	memcpy(dst, prefix, pl);
	memcpy(dst + pl, ver, vlen);
	memcpy(dst + pl + vlen, suffix, sl + 1);
}
