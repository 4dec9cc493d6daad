/* feedcache: the first pages of community feeds and single posts in Redis,
 * under versioned keys, and the read-your-writes marker.
 *
 * Keys (the hash tag {c<cid>} puts a community's keys in one Cluster slot, so
 * one Lua script reads the version and the entry in one round trip):
 *   th:feedver:{c<cid>}                   STRING  the community's feed version
 *   th:feed:{c<cid>}:v<ver>:<limit>       STRING  first page of the feed, EX TTL
 *   th:post:{c<cid>}:v<ver>:<post_id>     STRING  one post, EX TTL
 *   th:ryw:<uid>                          STRING  "the caller wrote lately", EX
 *                                                  TH_RYW_SECONDS (replica only)
 * An entry is "<ids>\n<json>": the ids of the posts in it ("1,2,3") and the
 * reply shared by every caller, with "my_reactions":[] in each post.
 *
 * Every write to a community's posts, comments or reactions bumps its version
 * after its commit and before its reply: every entry of the old version is
 * unreachable at once (it dies with its TTL), so a post created with 201 is
 * in the very next feed request.  A reader that took the old version before
 * the bump stores what it read under the old version: unreachable, harmless.
 * Cache fills read the primary (see posts.h), so an entry stored under a
 * version never predates the write that made that version.
 *
 * A missing version (new community, Redis flushed, key evicted) is set to the
 * worker's clock in microseconds, never back to a small number an older,
 * still-living entry may carry; bump INCRs an existing version the same way.
 *
 * With Redis down every lookup is a miss and nothing is stored: the routes
 * answer from PostgreSQL.  A bump that fails cannot make entries unreachable;
 * they expire with their TTL (logged, so an operator knows reads may be stale
 * for up to TH_FEED_CACHE_TTL seconds). */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cache.h"
#include "config.h"
#include "jh.h"
#include "log.h"
#include "metrics.h"
#include "posts.h"

/* KEYS[1] version key, KEYS[2] entry key prefix (".../v"), ARGV[1] entry key
 * suffix (":<item>"), ARGV[2] a fresh version for a missing one.
 * Returns {version, entry or false}. */
static const char lookup_lua[] =
	"local v = redis.call('GET', KEYS[1]) "
	"if not v then "
	"  redis.call('SET', KEYS[1], ARGV[2], 'NX') "
	"  v = redis.call('GET', KEYS[1]) "
	"end "
	"return {v, redis.call('GET', KEYS[2] .. v .. ARGV[1])}";

/* KEYS[1] version key, ARGV[1] a fresh version for a missing one. */
static const char bump_lua[] =
	"if redis.call('EXISTS', KEYS[1]) == 1 then "
	"  return redis.call('INCR', KEYS[1]) "
	"end "
	"redis.call('SET', KEYS[1], ARGV[1]) "
	"return tonumber(ARGV[1])";

struct script {
	const char *body;
	char sha[41]; /* "" until SCRIPT LOAD told us */
};

static struct script lookup_script = {lookup_lua, ""};
static struct script bump_script = {bump_lua, ""};

static int hits_counter = -2, misses_counter = -2; /* -2: not registered yet */

static void count(int *counter, const char *name)
{
	if (*counter == -2)
		*counter = metrics_counter(name);
	metrics_add(*counter, 1);
}

static long cache_ttl(void)
{
	static long ttl;

	if (!ttl)
		ttl = (long)cfg_int("TH_FEED_CACHE_TTL", 60, 1, 86400);
	return ttl;
}

static long ryw_seconds(void)
{
	static long s;

	if (!s)
		s = (long)cfg_int("TH_RYW_SECONDS", 10, 1, 3600);
	return s;
}

static int have_replica(void)
{
	static int known = -1;

	if (known < 0) {
		const char *r = cfg_str("TH_DB_READ_CONNINFO", NULL);

		known = r && *r;
	}
	return known;
}

/* A version no living entry can carry: microseconds of the wall clock. */
static void fresh_version(char buf[24])
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	snprintf(buf, 24, "%lld", (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000);
}

/* EVALSHA, loading the script first when its sha is unknown or Redis lost it
 * (restart, SCRIPT FLUSH).  argv[0..1] are reserved for the command and sha.
 * NULL when Redis cannot be reached. */
static struct cache_reply *script_run(struct script *s, int argc, const char **argv)
{
	struct cache_reply *r;
	int attempt;

	for (attempt = 0; attempt < 2; attempt++) {
		if (!s->sha[0]) {
			const char *load[] = {"SCRIPT", "LOAD", s->body};
			size_t len;
			const char *sha;

			r = cache_cmd(3, load, NULL);
			if (!r)
				return NULL;
			sha = cache_reply_str(r, &len);
			if (cache_reply_type(r) != CACHE_STR || len != 40)
				return r; /* an error reply: the caller logs it */
			memcpy(s->sha, sha, 40);
			s->sha[40] = '\0';
			cache_reply_free(r);
		}
		argv[0] = "EVALSHA";
		argv[1] = s->sha;
		r = cache_cmd(argc, argv, NULL);
		if (!r || cache_reply_type(r) != CACHE_ERROR ||
		    strncmp(cache_reply_str(r, NULL), "NOSCRIPT", 8) != 0)
			return r;
		cache_reply_free(r);
		s->sha[0] = '\0';
	}
	return NULL;
}

void feedcache_bump(int64_t community_id)
{
	char key[48], fresh[24];
	const char *argv[] = {NULL, NULL, "1", key, fresh};
	struct cache_reply *r;

	snprintf(key, sizeof(key), "th:feedver:{c%lld}", (long long)community_id);
	fresh_version(fresh);
	r = script_run(&bump_script, 5, argv);
	if (!r || cache_reply_type(r) != CACHE_INT)
		log_warn("feedcache: bump of community %lld failed (%s): cached reads may be "
			 "stale until they expire",
			 (long long)community_id,
			 r ? cache_reply_str(r, NULL) : cache_last_error());
	cache_reply_free(r);
}

/* True when s is a comma-separated list of decimal ids (or empty). */
static int ids_ok(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || s[i] == ','))
			return 0;
	return 1;
}

/* Replies with a cached entry: its JSON as stored when the caller has no
 * reactions on its posts (no parse), else parsed, filled and re-serialized.
 * -1 when the entry is malformed (then nothing was replied: a miss). */
static int reply_entry(struct http_req *req, const char *v, size_t len)
{
	const char *nl = memchr(v, '\n', len);
	const char *json;
	size_t jlen;
	char *ids_pg, *body;
	struct db_res *mine = NULL;
	struct json_object *o;

	if (!nl || !ids_ok(v, (size_t)(nl - v)))
		return -1;
	json = nl + 1;
	jlen = len - (size_t)(json - v);
	if (req->user_id && nl > v) {
		ids_pg = arena_printf(req->arena, "{%.*s}", (int)(nl - v), v);
		if (!ids_pg) {
			http_reply_error(req, TH_EINTERNAL, "out of memory", NULL);
			return 0;
		}
		mine = posts_mine_query(req, ids_pg);
		if (!mine)
			return 0; /* replied */
		if (db_res_rows(mine) > 0) {
			o = jh_parse(json, jlen);
			if (!o) {
				db_res_free(mine);
				return -1;
			}
			posts_mine_apply(mine, o);
			db_res_free(mine);
			http_reply_json(req, 200, o);
			return 0;
		}
		db_res_free(mine);
	}
	/* the fast path: the caller has no reactions here, the bytes are theirs */
	body = arena_strndup(req->arena, json, jlen);
	if (!body) {
		http_reply_error(req, TH_EINTERNAL, "out of memory", NULL);
		return 0;
	}
	http_reply_raw(req, 200, "application/json", body, jlen);
	return 0;
}

int feedcache_lookup(struct http_req *req, const char *what, int64_t cid, int64_t item,
		     char key[FEEDCACHE_KEY])
{
	char vkey[48], prefix[64], suffix[32], fresh[24];
	const char *argv[] = {NULL, NULL, "2", vkey, prefix, suffix, fresh};
	const struct cache_reply *ver, *entry;
	struct cache_reply *r;
	const char *v;
	size_t vlen, elen;
	int rc = 0;

	key[0] = '\0';
	snprintf(vkey, sizeof(vkey), "th:feedver:{c%lld}", (long long)cid);
	snprintf(prefix, sizeof(prefix), "th:%s:{c%lld}:v", what, (long long)cid);
	snprintf(suffix, sizeof(suffix), ":%lld", (long long)item);
	fresh_version(fresh);
	r = script_run(&lookup_script, 7, argv);
	if (!r || cache_reply_type(r) != CACHE_ARRAY || cache_reply_count(r) != 2) {
		/* Redis down or confused: a miss that stores nothing */
		if (r)
			log_warn("feedcache: lookup failed: %s", cache_reply_str(r, NULL));
		count(&misses_counter, "feed_cache_misses_total");
		goto out;
	}
	ver = cache_reply_elem(r, 0);
	entry = cache_reply_elem(r, 1);
	v = cache_reply_str(ver, &vlen);
	if (cache_reply_type(ver) != CACHE_STR || vlen == 0 || vlen > 20 || !ids_ok(v, vlen) ||
	    memchr(v, ',', vlen)) {
		count(&misses_counter, "feed_cache_misses_total");
		goto out;
	}
	snprintf(key, FEEDCACHE_KEY, "%s%.*s%s", prefix, (int)vlen, v, suffix);
	if (cache_reply_type(entry) == CACHE_STR) {
		const char *e = cache_reply_str(entry, &elen);

		if (reply_entry(req, e, elen) == 0) {
			count(&hits_counter, "feed_cache_hits_total");
			rc = 1;
			goto out;
		}
		log_warn("feedcache: malformed entry %s; refilling", key);
	}
	count(&misses_counter, "feed_cache_misses_total");
out:
	cache_reply_free(r);
	return rc;
}

void feedcache_store(const char *key, const char *ids_csv, const char *json, size_t len)
{
	size_t idlen = strlen(ids_csv);
	char ttl[24], *v = malloc(idlen + 1 + len);
	const char *argv[] = {"SET", key, v, "EX", ttl};
	size_t lens[] = {3, strlen(key), idlen + 1 + len, 2, 0};
	struct cache_reply *r;

	if (!v) {
		log_warn("feedcache: out of memory storing %s", key);
		return;
	}
	memcpy(v, ids_csv, idlen);
	v[idlen] = '\n';
	memcpy(v + idlen + 1, json, len);
	snprintf(ttl, sizeof(ttl), "%ld", cache_ttl());
	lens[4] = strlen(ttl);
	r = cache_cmd(5, argv, lens);
	if (r && cache_reply_type(r) == CACHE_ERROR)
		log_warn("feedcache: SET %s: %s", key, cache_reply_str(r, NULL));
	cache_reply_free(r);
	free(v);
}

enum db_role posts_read_role(struct http_req *req)
{
	char key[40];
	const char *argv[] = {"EXISTS", key};
	struct cache_reply *r;
	enum db_role role;

	if (!req->user_id || !have_replica())
		return DB_READ;
	snprintf(key, sizeof(key), "th:ryw:%lld", (long long)req->user_id);
	r = cache_cmd(2, argv, NULL);
	/* no answer: we cannot know whether the caller just wrote */
	role = (r && cache_reply_type(r) == CACHE_INT && cache_reply_int(r) == 0) ? DB_READ
										  : DB_PRIMARY;
	cache_reply_free(r);
	return role;
}

void posts_wrote(struct http_req *req)
{
	char key[40], ttl[24];
	const char *argv[] = {"SET", key, "1", "EX", ttl};
	struct cache_reply *r;

	if (!req->user_id || !have_replica())
		return;
	snprintf(key, sizeof(key), "th:ryw:%lld", (long long)req->user_id);
	snprintf(ttl, sizeof(ttl), "%ld", ryw_seconds());
	r = cache_cmd(5, argv, NULL);
	/* lost: posts_read_role() then says DB_READ for a while; logged */
	if (!r || cache_reply_type(r) == CACHE_ERROR)
		log_warn("feedcache: read-your-writes marker for user %lld not set",
			 (long long)req->user_id);
	cache_reply_free(r);
}
