/* feedcache: the first pages of community feeds and single posts in Redis,
 * under versioned keys, with what a cache hit needs besides them (may the
 * caller read the community, which posts of the entry the caller reacted
 * to), so that a hit is one Redis round trip and no PostgreSQL at all.
 *
 * Keys (the hash tag {c<cid>} puts a community's keys in one Cluster slot, so
 * one Lua script, or one MGET while the worker's copy of the entry is
 * current (see feedlocal.h), reads them in one round trip):
 *   th:feedver:{c<cid>}                       STRING  the community's feed version
 *   th:accver:{c<cid>}                        STRING  its access version
 *   th:feed:{c<cid>}:v<fver>:<limit>          STRING  first page of the feed, EX TTL
 *   th:post:{c<cid>}:v<fver>:<post_id>        STRING  one post, EX TTL
 *   th:mine:{c<cid>}:v<fver>:<uid>:<what>:<item>
 *                                             STRING  the caller's reactions to the
 *                                                     posts of that entry, EX TTL
 *   th:acc:{c<cid>}:v<aver>                   STRING  "public" | "private", EX TTL
 *   th:acc:{c<cid>}:v<aver>:<uid>             STRING  the caller's role in a private
 *                                                     community, or "none", EX TTL
 *   th:ryw:<uid> (lib/ryw.h)                  STRING  "the caller wrote lately", EX
 *                                                     TH_RYW_SECONDS (replica only)
 * An entry is "<ids>\n<json>": the ids of the posts in it ("1,2,3") and the
 * reply shared by every caller, with "my_reactions":[] in each post.  A mine
 * entry is "<ids>\n" then one "<post_id>\t<JSON array of emoji>\n" per post
 * the caller reacted to: the ids say which entry it was made for (a hit
 * needs them equal), and an empty list is "<ids>\n", never a missing key.
 *
 * Every write to a community's posts, comments or reactions bumps its feed
 * version, every change of its visibility, of a membership or of a ban its
 * access version, after the commit and before the reply: every entry of the
 * old version is unreachable at once (it dies with its TTL), so a post
 * created with 201 is in the very next feed request, a reaction in the very
 * next my_reactions, and a removed or banned member of a private community
 * gets 404 on the very next read.  A reader takes the versions before it
 * reads PostgreSQL, so what it stores under a version it read was read after
 * that version was made: a reader that took the old version before the bump
 * stores what it read under the old version: unreachable, harmless.  Cache
 * fills read the primary (see posts.h), so an entry stored under a version
 * never predates the write that made that version.
 *
 * Why versioned verdicts and not the membership mirror (lib/mirror.c): the
 * mirror's keys live in other Cluster slots than the feed's, its writes are
 * best effort in no guaranteed order between two requests (enough for the
 * broker's 5 s, not for "at once"), and a flushed mirror cannot tell "no
 * member" from "not rebuilt yet".  A missing verdict here is only ever a
 * miss: PostgreSQL decides and the verdict is stored for the next request.
 *
 * Versions (lib/vcache.h): a missing one (new community, Redis flushed, key
 * evicted) is set to the wall clock in microseconds, never back to a small
 * number an older, still-living entry may carry; a bump INCRs an existing one.
 * A feed read makes missing versions only after PostgreSQL said the
 * community exists, so requests for ids that name nothing leave no keys.
 *
 * With Redis down every lookup is a miss and nothing is stored: the routes
 * answer from PostgreSQL.  A bump that fails cannot make entries unreachable:
 * it is logged, kept, and tried again before this worker's next cache
 * lookup or bump; until then (at most TH_FEED_CACHE_TTL seconds, when Redis
 * kept its data) other workers may serve the old version.  The stack's Redis
 * keeps no data across a restart, so a Redis that was down comes back empty. */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "config.h"
#include "feedlocal.h"
#include "feedmine.h"
#include "jh.h"
#include "reply.h"
#include "log.h"
#include "metrics.h"
#include "posts.h"
#include "vcache.h"

/* KEYS[1] feed version, KEYS[2] access version.  ARGV[1] entry prefix
 * (".../v"), ARGV[2] entry suffix (":<item>"), ARGV[3] mine prefix, ARGV[4]
 * mine suffix ("" for anonymous callers), ARGV[5] access prefix ("" when the
 * caller checks access itself), ARGV[6] the caller's access suffix (":<uid>",
 * "" for anonymous callers), ARGV[7] a fresh version for a missing one, or ""
 * when missing versions must not be made (nobody knows yet whether the
 * community exists: a request for any id must not leave keys behind), ARGV[8]
 * the feed version of the worker's own copy of the entry ("": none).
 * Returns {feed version, entry, mine, access version, community verdict,
 * caller verdict}, false (nil) for what was not read or is not there; the
 * entry is 1 (not sent again) when the worker's copy is of the version. */
static const char lookup_lua[] =
	"local function ver(k) "
	"  local v = redis.call('GET', k) "
	"  if not v and ARGV[7] ~= '' then "
	"    redis.call('SET', k, ARGV[7], 'NX') "
	"    v = redis.call('GET', k) "
	"  end "
	"  return v "
	"end "
	"local fv = ver(KEYS[1]) "
	"if not fv then return {false, false, false, ver(KEYS[2]), false, false} end "
	"local entry = 1 "
	"if fv ~= ARGV[8] then entry = redis.call('GET', ARGV[1] .. fv .. ARGV[2]) end "
	"local mine = false "
	"if entry and ARGV[4] ~= '' then mine = redis.call('GET', ARGV[3] .. fv .. ARGV[4]) end "
	"local av, acc, who = false, false, false "
	"if ARGV[5] ~= '' then "
	"  av = ver(KEYS[2]) "
	/* a feed version without an access version (posts written before
	 * anyone read the feed): no verdict to read; the caller makes it */
	"  if av then "
	"    acc = redis.call('GET', ARGV[5] .. av) "
	"    if acc == 'private' and ARGV[6] ~= '' then who = redis.call('GET', ARGV[5] .. av .. "
	"ARGV[6]) end "
	"  end "
	"end "
	"return {fv, entry, mine, av, acc, who}";

static struct cache_script lookup_script = {lookup_lua, ""};

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

/* ---- bumps (lib/vcache keeps the ones Redis did not take) ---- */

void feedcache_bump(int64_t community_id)
{
	char key[48];

	snprintf(key, sizeof(key), VCACHE_FEED_KEY, (long long)community_id);
	vcache_bump(key);
}

void feedcache_bump_access(int64_t community_id)
{
	char key[48];

	snprintf(key, sizeof(key), "th:accver:{c%lld}", (long long)community_id);
	vcache_bump(key);
}

/* ---- reading ---- */

static int version_ok(const char *v, size_t n)
{
	return n > 0 && n <= 20 && feedmine_ids_ok(v, n) && !memchr(v, ',', n);
}

/* Key names are built on every hit: by memcpy, not snprintf, whose format
 * parsing was a sixth of a hit's user time. */

/* dst (size bytes) = the strings of parts (NULL-terminated), cut to fit. */
static void cat_parts(char *dst, size_t size, const char *const *parts)
{
	size_t n = 0, l;

	for (; *parts; parts++) {
		l = strlen(*parts);
		if (l > size - 1 - n)
			l = size - 1 - n;
		memcpy(dst + n, *parts, l);
		n += l;
	}
	dst[n] = '\0';
}
#define cat(dst, size, ...) cat_parts(dst, size, (const char *const[]){__VA_ARGS__, NULL})


void feedcache_store(struct arena *ar, const char *key, const char *a, size_t alen, const char *b,
		     size_t blen)
{
	vcache_store(ar, key, a, alen, b, blen, cache_ttl());
}


/* What one lookup found; the strings live with r. */
struct found {
	struct cache_reply *r;
	int checked; /* entry is a worker's copy whose shape was checked */
	const char *fv, *entry, *mine, *av, *acc, *who;
	size_t fvlen, elen, mlen, avlen, alen, wlen;
};

static const char *elem(const struct cache_reply *r, size_t i, size_t *len)
{
	const struct cache_reply *e = cache_reply_elem(r, i);

	if (cache_reply_type(e) != CACHE_STR) {
		*len = 0;
		return NULL;
	}
	return cache_reply_str(e, len);
}

/* Decides from the cached verdicts whether the caller may read the
 * community (policy_readable()), else from PostgreSQL, storing the
 * verdicts under the access version.  0: yes; -1: replied (404, 503). */
static int access_check(struct http_req *req, int64_t cid, const struct found *f,
			const char *acc_prefix, const char *who_suffix)
{
	struct community c;
	char key[FEEDCACHE_KEY];
	const char *role;

	if (f->acc && f->alen == 6 && memcmp(f->acc, "public", 6) == 0)
		return 0;
	if (f->acc && f->alen == 7 && memcmp(f->acc, "private", 7) == 0) {
		if (!req->user_id)
			goto hidden;
		/* anything but a role or "none" is no verdict */
		if (f->who && f->wlen == 4 && memcmp(f->who, "none", 4) == 0)
			goto hidden;
		if (f->who && role_parse(f->who) != ROLE_NONE)
			return 0;
	}
	/* no verdict: PostgreSQL decides (the primary: a caller sees their own
	 * join at once), and the verdicts are kept for the next request */
	if (community_load(req, cid, &c) < 0)
		return -1;
	if (f->av) {
		vcache_key(key, FEEDCACHE_KEY, acc_prefix, f->av, f->avlen, "");
		feedcache_store(req->arena, key, c.is_public ? "public" : "private",
				c.is_public ? 6 : 7, "", 0);
		if (!c.is_public && req->user_id) {
			role = c.my_role == ROLE_NONE ? "none" : role_name(c.my_role);
			vcache_key(key, FEEDCACHE_KEY, acc_prefix, f->av, f->avlen, who_suffix);
			feedcache_store(req->arena, key, role, strlen(role), "", 0);
		}
	}
	if (policy_readable(&c))
		return 0;
hidden:
	http_reply_error(req, TH_ENOTFOUND, "no such community", NULL);
	return -1;
}

/* The lookup when the worker holds a copy of the entry: one MGET of the
 * versions and of the keys the copy's versions name (the caller's reactions
 * and, with aprefix, the verdicts).  MGET reads them at one instant, so when
 * the versions it returns are the copy's, the rest belongs to them; the
 * script (which creates missing versions, and reads keys named by versions
 * it has just read) is needed only when they moved.  The keys share the
 * {c<cid>} slot, as MGET in a Cluster needs.  0 and f filled (f->r: the
 * reply, the request's), or -1: use the script. */
static int lookup_held(struct http_req *req, struct feedlocal *loc, const char *vkey,
		       const char *akey, const char *mprefix, const char *msuffix,
		       const char *aprefix, const char *wsuffix, struct found *f)
{
	char mkey[FEEDCACHE_KEY], acckey[FEEDCACHE_KEY], whokey[FEEDCACHE_KEY];
	const char *argv[6] = {"MGET", vkey};
	size_t vlen;
	const char *v;
	int argc = 2, im = 0, ia = 0, iw = 0;

	if (aprefix[0] && !loc->aver[0])
		return -1;
	if (aprefix[0])
		argv[argc++] = akey;
	if (msuffix[0]) {
		vcache_key(mkey, FEEDCACHE_KEY, mprefix, loc->ver, strlen(loc->ver), msuffix);
		im = argc;
		argv[argc++] = mkey;
	}
	if (aprefix[0]) {
		vcache_key(acckey, FEEDCACHE_KEY, aprefix, loc->aver, strlen(loc->aver), "");
		ia = argc;
		argv[argc++] = acckey;
		if (wsuffix[0]) {
			vcache_key(whokey, FEEDCACHE_KEY, aprefix, loc->aver, strlen(loc->aver),
				   wsuffix);
			iw = argc;
			argv[argc++] = whokey;
		}
	}
	f->r = cache_own(req, cache_cmd(argc, argv, NULL));
	if (!f->r || cache_reply_type(f->r) != CACHE_ARRAY ||
	    cache_reply_count(f->r) != (size_t)argc - 1)
		goto moved;
	v = elem(f->r, 0, &vlen);
	if (!v || vlen != strlen(loc->ver) || memcmp(v, loc->ver, vlen) != 0)
		goto moved;
	if (aprefix[0]) {
		v = elem(f->r, 1, &vlen);
		if (!v || vlen != strlen(loc->aver) || memcmp(v, loc->aver, vlen) != 0)
			goto moved;
		f->av = loc->aver;
		f->avlen = vlen;
		f->acc = elem(f->r, (size_t)ia - 1, &f->alen);
		if (iw)
			f->who = elem(f->r, (size_t)iw - 1, &f->wlen);
	}
	f->fv = loc->ver;
	f->fvlen = strlen(loc->ver);
	f->entry = loc->data;
	f->elen = loc->len;
	f->checked = loc->checked;
	if (im)
		f->mine = elem(f->r, (size_t)im - 1, &f->mlen);
	return 0;
moved:
	/* also Redis down: the script's attempt then finds it down too (at
	 * once, while cache.c backs off) and the read goes to PostgreSQL */
	f->r = NULL;
	return -1;
}

int feedcache_read(struct http_req *req, const char *what, int64_t cid, int64_t item,
		   int check_access, struct feedcache_fill *fill)
{
	char vkey[48], akey[48], prefix[64], suffix[32], mprefix[64], msuffix[80], aprefix[64],
		wsuffix[32], fresh[24];
	const char *argv[] = {NULL,    NULL,    "2",     vkey,    akey,  prefix, suffix,
			      mprefix, msuffix, aprefix, wsuffix, fresh, ""};
	struct found f;
	struct feedlocal *loc;
	int rc = 0;

	char b1[24], b2[24], b3[24], tag[32];
	const char *c_s = ids_text(b1, cid), *item_s = ids_text(b2, item),
		   *uid_s = ids_text(b3, req->user_id);

	fill->key[0] = fill->mine_key[0] = fill->name[0] = fill->ver[0] = '\0';
	vcache_retry();
	cat(tag, sizeof(tag), "{c", c_s, "}");
	cat(vkey, sizeof(vkey), "th:feedver:", tag);
	cat(akey, sizeof(akey), "th:accver:", tag);
	cat(prefix, sizeof(prefix), "th:", what, ":", tag, ":v");
	cat(suffix, sizeof(suffix), ":", item_s);
	cat(mprefix, sizeof(mprefix), "th:mine:", tag, ":v");
	msuffix[0] = wsuffix[0] = aprefix[0] = '\0';
	if (req->user_id) {
		cat(msuffix, sizeof(msuffix), ":", uid_s, ":", what, ":", item_s);
		cat(wsuffix, sizeof(wsuffix), ":", uid_s);
	}
	if (check_access)
		cat(aprefix, sizeof(aprefix), "th:acc:", tag, ":v");
	cat(fill->name, sizeof(fill->name), prefix, suffix);
	loc = feedlocal_get(fill->name);
	memset(&f, 0, sizeof(f));
	if (loc && lookup_held(req, loc, vkey, akey, mprefix, msuffix, aprefix, wsuffix, &f) == 0)
		goto found;
	vcache_fresh_version(fresh);
	if (check_access)
		argv[11] = ""; /* not before PostgreSQL said the community exists */
	if (loc)
		argv[12] = loc->ver;
	f.r = cache_own(req, cache_script_run(&lookup_script, 13, argv));
	if (!f.r || cache_reply_type(f.r) != CACHE_ARRAY || cache_reply_count(f.r) != 6) {
		/* Redis down or confused: a miss that stores nothing */
		if (f.r)
			log_warn("feedcache: lookup failed: %s", cache_reply_str(f.r, NULL));
		count(&misses_counter, "feed_cache_misses_total");
		if (check_access) {
			struct community c;

			if (community_load(req, cid, &c) < 0)
				return 1;
			if (!policy_readable(&c)) {
				http_reply_error(req, TH_ENOTFOUND, "no such community", NULL);
				return 1;
			}
		}
		return 0;
	}
	f.fv = elem(f.r, 0, &f.fvlen);
	f.entry = elem(f.r, 1, &f.elen);
	if (cache_reply_type(cache_reply_elem(f.r, 1)) == CACHE_INT) {
		/* "yours is current": only ever the answer to the version we sent */
		if (!loc || !f.fv || strlen(loc->ver) != f.fvlen ||
		    memcmp(loc->ver, f.fv, f.fvlen) != 0) {
			log_warn("feedcache: lookup answered a copy we do not hold");
			f.fv = NULL;
		} else {
			f.entry = loc->data;
			f.elen = loc->len;
			f.checked = loc->checked;
		}
	} else if (f.entry && f.fv && version_ok(f.fv, f.fvlen)) {
		feedlocal_put(fill->name, f.fv, f.fvlen, f.entry, f.elen, "", 0, cache_ttl());
	}
	f.mine = elem(f.r, 2, &f.mlen);
	f.av = elem(f.r, 3, &f.avlen);
	f.acc = elem(f.r, 4, &f.alen);
	f.who = elem(f.r, 5, &f.wlen);
	if (f.av && !version_ok(f.av, f.avlen))
		f.av = NULL; /* decide from PostgreSQL, store nothing */
	loc = feedlocal_get(fill->name);
	if (loc && f.fv && f.fvlen == strlen(loc->ver) && memcmp(f.fv, loc->ver, f.fvlen) == 0)
		snprintf(loc->aver, sizeof(loc->aver), "%.*s", f.av ? (int)f.avlen : 0,
			 f.av ? f.av : "");
found:
	if (check_access && access_check(req, cid, &f, aprefix, wsuffix) < 0) {
		rc = 1;
		goto out;
	}
	if (check_access && (!f.fv || !f.av)) {
		/* the community exists: make its missing versions for the next
		 * request (this one stores nothing: nothing was read under them) */
		const char *nx1[] = {"SET", vkey, fresh, "NX"}, *nx2[] = {"SET", akey, fresh, "NX"};

		vcache_fresh_version(fresh);
		if (!f.fv)
			(void)cache_own(req, cache_cmd(4, nx1, NULL));
		if (!f.av) /* absent, or not a version: NX leaves the latter */
			(void)cache_own(req, cache_cmd(4, nx2, NULL));
	}
	if (!f.fv || !version_ok(f.fv, f.fvlen)) {
		count(&misses_counter, "feed_cache_misses_total");
		goto out;
	}
	vcache_key(fill->key, FEEDCACHE_KEY, prefix, f.fv, f.fvlen, suffix);
	memcpy(fill->ver, f.fv, f.fvlen); /* version_ok: at most 20 digits */
	fill->ver[f.fvlen] = '\0';
	if (req->user_id)
		vcache_key(fill->mine_key, FEEDCACHE_KEY, mprefix, f.fv, f.fvlen, msuffix);
	if (f.entry) {
		const char *nl = memchr(f.entry, '\n', f.elen);
		char *ids;

		if (nl && feedmine_ids_ok(f.entry, (size_t)(nl - f.entry)) &&
		    (ids = arena_strndup(req->arena, f.entry, (size_t)(nl - f.entry))) &&
		    feedmine_reply(req, fill->mine_key, ids, nl + 1,
				   f.elen - (size_t)(nl + 1 - f.entry), f.mine, f.mlen,
				   f.checked) == 0) {
			count(&hits_counter, "feed_cache_hits_total");
			rc = 1;
			goto out;
		}
		log_warn("feedcache: malformed entry %s; refilling", fill->key);
		feedlocal_drop(feedlocal_get(fill->name));
	}
	count(&misses_counter, "feed_cache_misses_total");
out:
	return rc;
}

void feedcache_fill_reply(struct http_req *req, const struct feedcache_fill *fill,
			  const char *ids_csv, struct json_object *o)
{
	size_t len;
	const char *s = json_object_to_json_string_length(o,
							  JSON_C_TO_STRING_PLAIN |
								  JSON_C_TO_STRING_NOSLASHESCAPE,
							  &len);
	char *json = s ? arena_strndup(req->arena, s, len) : NULL;

	if (!json) {
		http_reply_error(req, TH_EINTERNAL, "out of memory", NULL);
		return;
	}
	if (fill->key[0]) {
		char *head = arena_printf(req->arena, "%s\n", ids_csv);

		if (head) {
			feedcache_store(req->arena, fill->key, head, strlen(head), json, len);
			feedlocal_put(fill->name, fill->ver, strlen(fill->ver), head, strlen(head),
				      json, len, cache_ttl());
		}
	}
	if (feedmine_reply(req, fill->mine_key, ids_csv, json, len, NULL, 0, 0) < 0) {
		log_error("feedcache: a reply of %zu bytes does not match its post ids", len);
		http_reply_error(req, TH_EINTERNAL, NULL, NULL);
	}
}
