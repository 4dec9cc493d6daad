/* acl: a direct-mapped cache in front of single-key Redis lookups. */
#include "acl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cache.h"
#include "db.h"
#include "mwatch.h"
#include "mono.h"

#define ACL_SLOTS \
	131072 /* power of two, two ways a key; 48 B each, 6 MiB of
				  * address space, pages touched only as used */
#define ACL_NEG_TTL_MS 1000
/* An answer tagged with the mirror's generation lives until the generation
 * moves, but no longer than this: a bound on what no write of the apps
 * announces (a membership removed in PostgreSQL alone, a lost bump while
 * Redis also refused the marker's DEL) */
#define ACL_GEN_TTL_MS 60000

enum kind { K_CHANNEL = 1, K_MEMBER, K_PUBLIC };

struct entry {
	int64_t a, b, val;
	long long expires_ms;
	uint64_t tag; /* 0: valid until expires_ms only */
	int kind;     /* 0: empty */
};

static struct entry *slots;
static long pos_ttl_ms = 5000;
static uint64_t gen_tag; /* acl_set_generation(); 0: unknown */
unsigned long acl_hits, acl_misses;

void acl_init(long ttl_ms)
{
	pos_ttl_ms = ttl_ms > 0 && ttl_ms <= 5000 ? ttl_ms : 5000;
	slots = calloc(ACL_SLOTS, sizeof(*slots));
}

void acl_close(void)
{
	free(slots);
	slots = NULL;
}

void acl_set_generation(uint64_t tag)
{
	gen_tag = tag;
}

/* The first of the key's two slots (the second is the next one). */
static struct entry *slot_for(int kind, int64_t a, int64_t b)
{
	uint64_t h = ((uint64_t)a * 0x9e3779b97f4a7c15ull) ^ ((uint64_t)b * 0xc2b2ae3d27d4eb4full) ^
		     (uint64_t)kind;

	h ^= h >> 29;
	h *= 0xbf58476d1ce4e5b9ull;
	h ^= h >> 32;
	return &slots[h & (ACL_SLOTS - 2)];
}

static int live(const struct entry *e, long long now)
{
	return e->kind && e->expires_ms > now && (!e->tag || e->tag == gen_tag);
}

static int cached(int kind, int64_t a, int64_t b, int64_t *val)
{
	struct entry *e;
	long long now;

	if (!slots)
		return 0;
	e = slot_for(kind, a, b);
	now = (long long)mono_ms();
	for (int w = 0; w < 2; w++, e++) {
		if (e->kind == kind && e->a == a && e->b == b && live(e, now)) {
			*val = e->val;
			acl_hits++;
			return 1;
		}
	}
	return 0;
}

/* tagged: the answer came from the mirror while its generation was known
 * (mwatch.c reads it once a second, before any lookup it can cover): it
 * holds until the generation moves.  The apps move it after every write to
 * the mirror (fcgi-apps/lib/mirror.c), and a rebuild sets a new marker, so
 * an answer read before a change is dropped at the next check (<= 1 s);
 * otherwise (PostgreSQL, generation unknown) the TTLs of acl.h apply. */
static void remember(int kind, int64_t a, int64_t b, int64_t val, int tagged)
{
	struct entry *e, *victim;
	long long now;

	if (!slots)
		return;
	e = slot_for(kind, a, b);
	now = (long long)mono_ms();
	/* the key's own slot, else a dead one, else the one that ends first */
	if (e[1].kind == kind && e[1].a == a && e[1].b == b)
		victim = &e[1];
	else if ((e->kind == kind && e->a == a && e->b == b) || !live(e, now))
		victim = e;
	else if (!live(&e[1], now))
		victim = &e[1];
	else
		victim = e->expires_ms <= e[1].expires_ms ? e : &e[1];
	victim->kind = kind;
	victim->a = a;
	victim->b = b;
	victim->val = val;
	victim->tag = tagged && gen_tag ? gen_tag : 0;
	victim->expires_ms = now + (victim->tag ? ACL_GEN_TTL_MS
				    : val       ? pos_ttl_ms
						: ACL_NEG_TTL_MS);
}

/* One Redis command whose answer is an integer, a string or nil, turned
 * into an int64 by conv, uncached.  -1 when Redis cannot answer. */
static int ask(int argc, const char *const *argv, int64_t (*conv)(const struct cache_reply *),
	       int64_t *val)
{
	struct cache_reply *r;
	int rc = -1;

	acl_misses++;
	r = cache_cmd(argc, argv, NULL);
	if (!r || cache_reply_type(r) == CACHE_ERROR)
		goto out;
	*val = conv(r);
	rc = 0;
out:
	cache_reply_free(r);
	return rc;
}

/* The same, remembered. */
static int lookup(int kind, int64_t a, int64_t b, int argc, const char *const *argv,
		  int64_t (*conv)(const struct cache_reply *), int64_t *val)
{
	uint64_t tag = gen_tag; /* as it was before the question */

	/* the caller found nothing in the cache */
	if (ask(argc, argv, conv, val) < 0)
		return -1;
	remember(kind, a, b, *val, tag && tag == gen_tag);
	return 0;
}

/* The same answer from PostgreSQL, while the mirror is missing or Redis is
 * out (mwatch.h): one indexed single-row query with the plugin's short
 * statement timeout.  -1 when PostgreSQL cannot answer either. */
static int pg_ask(const char *sql, int64_t a, int64_t b, int64_t *val)
{
	char pa[24], pb[24];
	const char *params[2] = {pa, pb};
	struct db_res *r;

	acl_misses++;
	snprintf(pa, sizeof(pa), "%lld", (long long)a);
	snprintf(pb, sizeof(pb), "%lld", (long long)b);
	r = db_exec(DB_PRIMARY, sql, b ? 2 : 1, params);
	if (!r)
		return -1;
	*val = db_res_rows(r) > 0 && !db_res_isnull(r, 0, 0)
		       ? strtoll(db_res_get(r, 0, 0), NULL, 10)
		       : 0;
	db_res_free(r);
	return 0;
}

/* The same through the cache. */
static int pg_lookup(int kind, const char *sql, int64_t a, int64_t b, int64_t *val)
{
	if (cached(kind, a, b, val))
		return 0;
	if (pg_ask(sql, a, b, val) < 0)
		return -1;
	remember(kind, a, b, *val, 0);
	return 0;
}

static int64_t as_int(const struct cache_reply *r)
{
	return cache_reply_type(r) == CACHE_INT   ? cache_reply_int(r)
	       : cache_reply_type(r) == CACHE_STR ? strtoll(cache_reply_str(r, NULL), NULL, 10)
						  : 0;
}

static int64_t is_public(const struct cache_reply *r)
{
	return cache_reply_type(r) == CACHE_STR && strcmp(cache_reply_str(r, NULL), "public") == 0;
}

/* The community of a channel (0: unknown). */
static int channel_community(int64_t ch, int64_t *cid)
{
	char rkey[48];
	const char *argv[] = {"GET", rkey};

	if (!mwatch_mirror_ok())
		return pg_lookup(K_CHANNEL, "SELECT community_id FROM channels WHERE id = $1", ch,
				 0, cid);
	if (cached(K_CHANNEL, ch, 0, cid))
		return 0;
	snprintf(rkey, sizeof(rkey), "th:channel:%lld", (long long)ch);
	return lookup(K_CHANNEL, ch, 0, 2, argv, as_int, cid);
}

static int member(int64_t cid, int64_t uid, int64_t *yes)
{
	char rkey[48], u[24];
	const char *argv[] = {"HEXISTS", rkey, u};

	if (!mwatch_mirror_ok())
		return pg_lookup(K_MEMBER,
				 "SELECT 1 FROM memberships WHERE community_id = $1 AND user_id = "
				 "$2",
				 cid, uid, yes);
	/* every delivery asks (MOSQ_ACL_READ): the hit costs no formatting */
	if (cached(K_MEMBER, cid, uid, yes))
		return 0;
	snprintf(rkey, sizeof(rkey), "th:members:%lld", (long long)cid);
	snprintf(u, sizeof(u), "%lld", (long long)uid);
	return lookup(K_MEMBER, cid, uid, 3, argv, as_int, yes);
}

static int public_community(int64_t cid, int64_t *yes)
{
	char rkey[48];
	const char *argv[] = {"HGET", rkey, "visibility"};

	if (!mwatch_mirror_ok())
		return pg_lookup(K_PUBLIC,
				 "SELECT (visibility = 'public')::int FROM communities WHERE id = "
				 "$1",
				 cid, 0, yes);
	if (cached(K_PUBLIC, cid, 0, yes))
		return 0;
	snprintf(rkey, sizeof(rkey), "th:community:%lld", (long long)cid);
	return lookup(K_PUBLIC, cid, 0, 3, argv, is_public, yes);
}

/* Asked of Redis every time, not cached: a member who leaves a call, or is
 * removed or banned from its community (community/callexit.c), must stop
 * signaling and receiving signals at once (issue 17), and signal traffic
 * is a few messages per call setup. */
static int in_call(int64_t call, int64_t uid, int64_t *yes)
{
	char rkey[64], u[24];
	const char *argv[] = {"SISMEMBER", rkey, u};

	if (!mwatch_mirror_ok())
		return pg_ask("SELECT 1 FROM call_participants p JOIN calls c ON c.id = p.call_id "
			      "WHERE p.call_id = $1 AND p.user_id = $2 AND c.ended_at IS NULL",
			      call, uid, yes);
	snprintf(rkey, sizeof(rkey), "th:call:%lld:participants", (long long)call);
	snprintf(u, sizeof(u), "%lld", (long long)uid);
	return ask(3, argv, as_int, yes);
}

int acl_allowed(const struct acl_decision *d, int64_t uid)
{
	int64_t cid, yes, yes2;

	switch (d->need) {
	case NEED_ALLOW:
		return 1;
	case NEED_CHANNEL_MEMBER:
		if (channel_community(d->x, &cid) < 0 || cid <= 0)
			return 0;
		return member(cid, uid, &yes) == 0 && yes;
	case NEED_COMMUNITY_MEMBER:
		return member(d->x, uid, &yes) == 0 && yes;
	case NEED_COMMUNITY_READER:
		if (public_community(d->x, &yes) < 0)
			return 0;
		return yes || (member(d->x, uid, &yes2) == 0 && yes2);
	case NEED_CALL_MEMBER:
		return in_call(d->x, uid, &yes) == 0 && yes;
	case NEED_CALL_PAIR:
		return in_call(d->x, uid, &yes) == 0 && yes && in_call(d->x, d->y, &yes2) == 0 &&
		       yes2;
	default:
		return 0;
	}
}

int acl_user_communities(int64_t uid, int64_t *ids, int max)
{
	char rkey[64];
	const char *argv[] = {"SMEMBERS", rkey};
	struct cache_reply *r;
	int n = -1;

	snprintf(rkey, sizeof(rkey), "th:user:%lld:communities", (long long)uid);
	r = cache_cmd(2, argv, NULL);
	if (!r || cache_reply_type(r) != CACHE_ARRAY)
		goto out;
	n = 0;
	for (size_t i = 0; i < cache_reply_count(r) && n < max; i++) {
		int64_t c = strtoll(cache_reply_str(cache_reply_elem(r, i), NULL), NULL, 10);

		if (c > 0)
			ids[n++] = c;
	}
out:
	cache_reply_free(r);
	return n;
}
