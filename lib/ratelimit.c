/* ratelimit: INCR + PEXPIRE on first hit, PTTL back, in one EVAL. */
#include "ratelimit.h"

#include <stdio.h>

#include "cache.h"

static const char hit_script[] =
	"local c = redis.call('INCR', KEYS[1]) "
	"local t = redis.call('PTTL', KEYS[1]) "
	"if c == 1 or t < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) t = tonumber(ARGV[1]) end "
	"return {c, t}";

static const char peek_script[] = "local c = tonumber(redis.call('GET', KEYS[1]) or '0') "
				  "local t = redis.call('PTTL', KEYS[1]) "
				  "return {c, t}";

/* GCRA: tat = max(stored, now); taking n moves it n * interval later; the
 * bucket is over when tat - now would exceed burst * interval.  The key
 * expires when the bucket is full again, so idle users cost nothing. */
static const char take_script[] = CACHE_LUA_NOW
	"local iv, burst, n, force = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), "
	"ARGV[4] == '1' "
	"local tat = tonumber(redis.call('GET', KEYS[1]) or '0') "
	"if tat < now then tat = now end "
	"local new = tat + n * iv "
	"local limit = burst * iv "
	"if new - now > limit and not force then "
	"  return {0, new - limit - now, math.floor((limit - (tat - now)) / iv)} end "
	"redis.call('SET', KEYS[1], new, 'PX', math.max(new - now, 1)) "
	"return {1, 0, math.floor((limit - (new - now)) / iv)}";

static int run(const char *script, const char *key, const char *arg, struct rl_state *st)
{
	const char *argv[] = {"EVAL", script, "1", key, arg};
	struct cache_reply *r = cache_cmd(arg ? 5 : 4, argv, NULL);
	long long ttl_ms;
	int rc = -1;

	if (!r || cache_reply_type(r) != CACHE_ARRAY || cache_reply_count(r) != 2)
		goto out;
	st->count = cache_reply_int(cache_reply_elem(r, 0));
	ttl_ms = cache_reply_int(cache_reply_elem(r, 1));
	st->retry_after_s = ttl_ms > 0 ? (long)((ttl_ms + 999) / 1000) : 1;
	rc = 0;
out:
	cache_reply_free(r);
	return rc;
}

int rl_hit(const char *key, long window_s, struct rl_state *st)
{
	char ms[32];

	snprintf(ms, sizeof(ms), "%lld", (long long)window_s * 1000);
	return run(hit_script, key, ms, st);
}

int rl_peek(const char *key, struct rl_state *st)
{
	return run(peek_script, key, NULL, st);
}

int rl_take(const char *key, long interval_ms, long burst, long n, int force, struct rl_state *st)
{
	char iv[24], b[24], cnt[24];
	const char *argv[] = {"EVAL", take_script, "1", key, iv, b, cnt, force ? "1" : "0"};
	struct cache_reply *r;
	long long taken, wait_ms;
	int rc = -1;

	if (interval_ms < 1 || burst < 1 || n < 1)
		return -1;
	snprintf(iv, sizeof(iv), "%ld", interval_ms);
	snprintf(b, sizeof(b), "%ld", burst);
	snprintf(cnt, sizeof(cnt), "%ld", n);
	r = cache_cmd(8, argv, NULL);
	if (!r || cache_reply_type(r) != CACHE_ARRAY || cache_reply_count(r) != 3)
		goto out;
	taken = cache_reply_int(cache_reply_elem(r, 0));
	wait_ms = cache_reply_int(cache_reply_elem(r, 1));
	st->count = cache_reply_int(cache_reply_elem(r, 2));
	st->retry_after_s = wait_ms > 0 ? (long)((wait_ms + 999) / 1000) : 1;
	rc = taken ? 1 : 0;
out:
	cache_reply_free(r);
	return rc;
}
