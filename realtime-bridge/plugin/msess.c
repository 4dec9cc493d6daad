/* msess: persistent sessions a user keeps, counted in Redis (see msess.h). */
#include "msess.h"

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <stdio.h>

#include "cache.h"

/* KEYS[1] the user's zset; ARGV: client id, keep ms, max.  1 when admitted
 * (its time set to now), 0 when refused. */
static struct cache_script admit_script =
	{CACHE_LUA_NOW "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2])) "
		       "if not redis.call('ZSCORE', KEYS[1], ARGV[1]) and "
		       "   redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end "
		       "redis.call('ZADD', KEYS[1], now, ARGV[1]) "
		       "redis.call('PEXPIRE', KEYS[1], ARGV[2]) "
		       "return 1",
	 ""};
/* KEYS[1]; ARGV: client id, keep ms: its time set to now, if it is there */
static struct cache_script left_script =
	{CACHE_LUA_NOW "if redis.call('ZADD', KEYS[1], 'XX', 'CH', now, ARGV[1]) == 1 then "
		       "  redis.call('PEXPIRE', KEYS[1], ARGV[2]) end "
		       "return 1",
	 ""};

static long max_sessions = 10;
static long long keep_ms = 86400000LL;
unsigned long msess_refused;

void msess_init(long max_per_user, long keep_s)
{
	max_sessions = max_per_user;
	keep_ms = keep_s * 1000LL;
}

/* 1 when the client's connection leaves a session behind */
static int persistent(struct mosquitto *client)
{
	return !mosquitto_client_clean_session(client);
}

/* EVALSHA s for uid's set with the client id and args[]: the integer
 * reply, or -1 when Redis did not answer one. */
static long long run(struct cache_script *s, int64_t uid, const char *client_id, int nargs,
		     const char *const *args)
{
	char key[48];
	const char *argv[7] = {NULL, NULL, "1", key, client_id};
	struct cache_reply *r;
	long long v = -1;

	snprintf(key, sizeof(key), "th:msess:{u%lld}", (long long)uid);
	for (int i = 0; i < nargs; i++)
		argv[5 + i] = args[i];
	r = cache_script_run(s, 5 + nargs, argv);
	if (r && cache_reply_type(r) == CACHE_INT)
		v = cache_reply_int(r);
	cache_reply_free(r);
	return v;
}

int msess_admit(struct mosquitto *client, int64_t uid, const char *client_id)
{
	char keep[24], max[24];
	const char *args[2] = {keep, max};
	long long v;

	if (!persistent(client))
		return 1;
	snprintf(keep, sizeof(keep), "%lld", keep_ms);
	snprintf(max, sizeof(max), "%ld", max_sessions);
	v = run(&admit_script, uid, client_id, 2, args);
	if (v < 0) {
		mosquitto_log_printf(MOSQ_LOG_WARNING,
				     "townhall: sessions of user %lld not counted (Redis); "
				     "admitted",
				     (long long)uid);
		return 1;
	}
	msess_refused += v == 0;
	return v != 0;
}

void msess_left(struct mosquitto *client, int64_t uid)
{
	char keep[24];
	const char *args[1] = {keep};
	const char *cid = mosquitto_client_id(client);

	if (uid <= 0 || !cid || !persistent(client))
		return;
	snprintf(keep, sizeof(keep), "%lld", keep_ms);
	(void)run(&left_script, uid, cid, 1, args);
}
