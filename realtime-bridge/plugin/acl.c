/* acl: a direct-mapped cache in front of single-key Redis lookups. */
#include "acl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cache.h"
#include "db.h"
#include "mirror.h"
#include "modrule.h"
#include "mwatch.h"
#include "mono.h"
#include "policy.h"

#define ACL_SLOTS \
	131072 /* power of two, two ways a key; 48 B each, 6 MiB of
				  * address space, pages touched only as used */
#define ACL_NEG_TTL_MS 1000
/* An answer tagged with the mirror's generation lives until the generation
 * moves, but no longer than gen_ttl_ms (TH_MQTT_ACL_GEN_TTL_S, 600 s): a
 * bound on what no write of the apps announces (a membership removed in
 * PostgreSQL alone, a lost bump while Redis also refused the marker's DEL).
 * Not shorter: a broadcast to every subscriber of an edge asks Redis once
 * per subscriber whose answer aged out, one round trip after another on
 * the broker's only thread (60 s made a message to 100,000 held clients,
 * subscribed two minutes before, cost 100,000 lookups). */

enum kind { K_CHANNEL = 1, K_MEMBER, K_PUBLIC, K_DM, K_RULES, K_ADMIN };

struct entry {
	int64_t a, b, val;
	long long expires_ms;
	uint64_t tag; /* 0: valid until expires_ms only */
	int kind;     /* 0: empty */
};

static struct entry *slots;
static long pos_ttl_ms = 5000;
static long long gen_ttl_ms = 600000;
static uint64_t gen_tag; /* acl_set_generation(); 0: unknown */
unsigned long acl_hits, acl_misses;

void acl_init(long ttl_ms, long gen_ttl_s)
{
	pos_ttl_ms = ttl_ms > 0 && ttl_ms <= 5000 ? ttl_ms : 5000;
	gen_ttl_ms = gen_ttl_s > 0 && gen_ttl_s <= 3600 ? gen_ttl_s * 1000LL : 600000;
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

/* Drops the cached answer of (kind, a, b), if one is there. */
static void forget(int kind, int64_t a, int64_t b)
{
	struct entry *e;

	if (!slots)
		return;
	e = slot_for(kind, a, b);
	for (int w = 0; w < 2; w++, e++)
		if (e->kind == kind && e->a == a && e->b == b)
			e->kind = 0;
}

int acl_forget_change(const char *what, int64_t a, int64_t b)
{
	if (strcmp(what, MIRROR_LOG_MEMBER) == 0) {
		forget(K_MEMBER, a, b);
	} else if (strcmp(what, MIRROR_LOG_COMMUNITY) == 0) {
		forget(K_PUBLIC, a, 0);
		forget(K_RULES, a, 0);
	} else if (strcmp(what, MIRROR_LOG_CHANNEL) == 0) {
		forget(K_CHANNEL, a, 0);
	} else if (strcmp(what, MIRROR_LOG_DM) == 0) {
		forget(K_DM, a, b);
	} else {
		return -1; /* MIRROR_LOG_ALL, or a kind this plugin does not know */
	}
	return 0;
}

/* tagged: the answer came from the mirror while its generation was known
 * (mwatch.c reads it once a second, before any lookup it can cover): it
 * holds until the generation moves (a rebuild sets a new marker) or a
 * change the apps logged after their write names it (lib/mirror.c, read by
 * mlog.c on the same tick), so an answer read before a change is dropped
 * at the next check (<= 1 s); otherwise (PostgreSQL, generation unknown)
 * the TTLs of acl.h apply. */
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
	victim->expires_ms = now + (victim->tag ? gen_ttl_ms : val ? pos_ttl_ms : ACL_NEG_TTL_MS);
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

/* What th:channel:<chid> holds for a DM (lib/mirror.h): no community. */
#define CHANNEL_DM (-1)

static int64_t as_channel(const struct cache_reply *r)
{
	if (cache_reply_type(r) == CACHE_STR && strcmp(cache_reply_str(r, NULL), "dm") == 0)
		return CHANNEL_DM;
	return as_int(r);
}

/* The community of a channel (0: unknown), CHANNEL_DM for a DM. */
static int channel_community(int64_t ch, int64_t *cid)
{
	char rkey[48];
	const char *argv[] = {"GET", rkey};

	if (!mwatch_mirror_ok())
		return pg_lookup(K_CHANNEL,
				 "SELECT coalesce(community_id, -1) FROM channels WHERE id = $1",
				 ch, 0, cid);
	if (cached(K_CHANNEL, ch, 0, cid))
		return 0;
	snprintf(rkey, sizeof(rkey), "th:channel:%lld", (long long)ch);
	return lookup(K_CHANNEL, ch, 0, 2, argv, as_channel, cid);
}

/* The caller's standing in community cid as policy.h's struct community
 * holds it, read from the mirror or (mirror missing, Redis out) from the
 * same SQL function the apps join, community_access() (migration 0017),
 * then decided by policy_decide(): the plugin and the apps apply one rule.
 * K_MEMBER caches the role, plus FACT_BANNED when PostgreSQL says banned.
 * The mirror holds no banned member (a ban removes the membership in the
 * same transaction, and the app drops it from th:members:<cid>), so a role
 * read from the mirror is a role of a member who is not banned.  Only what
 * the decision needs is asked: the visibility first when the need is to
 * read (a public community needs no role), the role otherwise. */
#define FACT_BANNED 0x100

static int pg_facts(int64_t cid, int64_t uid, int64_t *member_val, int64_t *pub)
{
	char pc[24], pu[24];
	const char *params[2] = {pu, pc};
	struct db_res *r;

	acl_misses++;
	snprintf(pc, sizeof(pc), "%lld", (long long)cid);
	snprintf(pu, sizeof(pu), "%lld", (long long)uid);
	r = db_exec(DB_PRIMARY, "SELECT " POLICY_COLS " FROM community_access($1, $2) a", 2,
		    params);
	if (!r)
		return -1;
	if (db_res_rows(r) > 0) {
		struct community c;

		policy_read(r, 0, 0, cid, &c);
		*member_val = (int64_t)c.my_role | (c.banned ? FACT_BANNED : 0);
		*pub = c.is_public;
	} else {
		*member_val = 0;
		*pub = 0;
	}
	db_res_free(r);
	remember(K_MEMBER, cid, uid, *member_val, 0);
	remember(K_PUBLIC, cid, 0, *pub, 0);
	return 0;
}

static int64_t as_role(const struct cache_reply *r)
{
	return cache_reply_type(r) == CACHE_STR ? (int64_t)role_parse(cache_reply_str(r, NULL)) : 0;
}

static int member_role(int64_t cid, int64_t uid, int64_t *val)
{
	char rkey[48], u[24];
	const char *argv[] = {"HGET", rkey, u};
	int64_t pub;

	/* every delivery asks (MOSQ_ACL_READ): the hit costs no formatting */
	if (cached(K_MEMBER, cid, uid, val))
		return 0;
	if (!mwatch_mirror_ok())
		return pg_facts(cid, uid, val, &pub);
	snprintf(rkey, sizeof(rkey), "th:members:%lld", (long long)cid);
	snprintf(u, sizeof(u), "%lld", (long long)uid);
	return lookup(K_MEMBER, cid, uid, 3, argv, as_role, val);
}

static int public_community(int64_t cid, int64_t uid, int64_t *yes)
{
	char rkey[48];
	const char *argv[] = {"HGET", rkey, "visibility"};
	int64_t member_val;

	if (cached(K_PUBLIC, cid, 0, yes))
		return 0;
	if (!mwatch_mirror_ok())
		return pg_facts(cid, uid, &member_val, yes);
	snprintf(rkey, sizeof(rkey), "th:community:%lld", (long long)cid);
	return lookup(K_PUBLIC, cid, 0, 3, argv, is_public, yes);
}

/* A site admin acts in any community as its owner (community_access(),
 * migration 0033, already says so when PostgreSQL answers).  The mirror
 * lists them in the set th:admins (scripts/mirror-rebuild; scripts/admin
 * rebuilds the mirror after each grant or revoke); PostgreSQL answers while
 * the mirror is not trusted.  *yes 1 for an admin; -1 when neither can
 * answer. */
static int site_admin(int64_t uid, int64_t *yes)
{
	char u[24];
	const char *argv[] = {"SISMEMBER", "th:admins", u};

	if (cached(K_ADMIN, uid, 0, yes))
		return 0;
	if (!mwatch_mirror_ok())
		return pg_lookup(K_ADMIN, "SELECT is_admin::int FROM users WHERE id = $1", uid, 0,
				 yes);
	snprintf(u, sizeof(u), "%lld", (long long)uid);
	return lookup(K_ADMIN, uid, 0, 3, argv, as_int, yes);
}

/* policy_decide() for uid in community cid with the role need asks for:
 * 1 when it allows, 0 otherwise (including "cannot decide"). */
static int community_allows(int64_t cid, int64_t uid, enum role need)
{
	struct community c = {.id = cid};
	int64_t val, pub;

	if (cid <= 0)
		return 0;
	/* A reader of a public community needs no role: asking for one first
	 * would cache a non-member's "no" that a join a moment later waits out
	 * (the generation is read once a second) */
	if (need == ROLE_NONE) {
		if (public_community(cid, uid, &pub) < 0)
			return 0;
		c.is_public = pub != 0;
	}
	if (!c.is_public) {
		if (member_role(cid, uid, &val) < 0)
			return 0;
		c.my_role = (enum role)(val & 0xff);
		c.banned = (val & FACT_BANNED) != 0;
	}
	if (policy_decide(&c, uid, need) == TH_OK)
		return 1;
	/* refused by the mirror's roles: a site admin is the owner anywhere
	 * (asked only now, so a member's publish costs no second lookup) */
	if (uid > 0 && mwatch_mirror_ok()) {
		int64_t admin;

		if (site_admin(uid, &admin) < 0 || !admin)
			return 0;
		c.my_role = ROLE_OWNER;
		c.banned = 0;
		return policy_decide(&c, uid, need) == TH_OK;
	}
	return 0;
}

/* The caller's standing in DM ch: K_DM caches ROLE_MEMBER for a member (0:
 * none), plus FACT_MUTED when another member blocked them, read from the
 * mirror's th:dm:<ch> (member|muted) or, when it is missing, from the apps'
 * own SQL function channel_access() (migration 0018); decided by
 * policy_decide() as the apps do: members read, a muted member may not
 * publish. */
#define FACT_MUTED 0x200

static int64_t as_dm_state(const struct cache_reply *r)
{
	const char *s;

	if (cache_reply_type(r) != CACHE_STR)
		return 0;
	s = cache_reply_str(r, NULL);
	return strcmp(s, "muted") == 0    ? (int64_t)ROLE_MEMBER | FACT_MUTED
	       : strcmp(s, "member") == 0 ? (int64_t)ROLE_MEMBER
					  : 0;
}

static int pg_dm_facts(int64_t ch, int64_t uid, int64_t *val)
{
	char pc[24], pu[24];
	const char *params[2] = {pu, pc};
	struct db_res *r;

	acl_misses++;
	snprintf(pc, sizeof(pc), "%lld", (long long)ch);
	snprintf(pu, sizeof(pu), "%lld", (long long)uid);
	r = db_exec(DB_PRIMARY, "SELECT " POLICY_CHANNEL_COLS " FROM channel_access($1, $2) a", 2,
		    params);
	if (!r)
		return -1;
	*val = 0;
	if (db_res_rows(r) > 0) {
		struct community c;

		policy_read_channel(r, 0, 0, &c);
		if (c.dm)
			*val = (int64_t)c.my_role | (c.muted ? FACT_MUTED : 0);
	}
	db_res_free(r);
	remember(K_DM, ch, uid, *val, 0);
	return 0;
}

static int dm_allows(int64_t ch, int64_t uid, enum role need)
{
	char rkey[48], u[24];
	const char *argv[] = {"HGET", rkey, u};
	struct community c = {.dm = 1};
	int64_t val;

	if (!cached(K_DM, ch, uid, &val)) {
		int rc;

		if (!mwatch_mirror_ok()) {
			rc = pg_dm_facts(ch, uid, &val);
		} else {
			snprintf(rkey, sizeof(rkey), "th:dm:%lld", (long long)ch);
			snprintf(u, sizeof(u), "%lld", (long long)uid);
			rc = lookup(K_DM, ch, uid, 3, argv, as_dm_state, &val);
		}
		if (rc < 0)
			return 0;
	}
	c.my_role = (enum role)(val & 0xff);
	c.muted = (val & FACT_MUTED) != 0;
	return policy_decide(&c, uid, need) == TH_OK;
}

/* chat/ and typing/ of channel ch: a community channel's members (reading
 * and writing alike), a DM's members (writing: not muted). */
static int channel_allows(int64_t ch, int64_t uid, int write)
{
	int64_t cid;

	if (channel_community(ch, &cid) < 0)
		return 0;
	if (cid == CHANNEL_DM)
		return dm_allows(ch, uid, write ? ROLE_MEMBER : ROLE_NONE);
	return community_allows(cid, uid, ROLE_MEMBER);
}

/* Asked of Redis every time, not cached: a member who leaves a call, or is
 * removed or banned from its community (community/callexit.c), must stop
 * signaling and receiving signals at once (issue 17), and signal traffic
 * is a few messages per call setup. */
static int in_call(int64_t call, int64_t uid, int64_t *yes)
{
	char rkey[64], u[24];
	const char *argv[] = {"SISMEMBER", rkey, u};

	/* never cached (a call's participants change by the second): every
	 * answer is a lookup, booked against the asking user's budget */
	acl_misses++;

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
	int64_t yes, yes2;

	switch (d->need) {
	case NEED_ALLOW:
		return 1;
	case NEED_CHANNEL_MEMBER:
		return channel_allows(d->x, uid, 0);
	case NEED_CHANNEL_WRITER:
		return channel_allows(d->x, uid, 1);
	case NEED_COMMUNITY_MEMBER:
		return community_allows(d->x, uid, ROLE_MEMBER);
	case NEED_COMMUNITY_READER:
		return community_allows(d->x, uid, ROLE_NONE);
	case NEED_CALL_MEMBER:
		return in_call(d->x, uid, &yes) == 0 && yes;
	case NEED_CALL_PAIR:
		return in_call(d->x, uid, &yes) == 0 && yes && in_call(d->x, d->y, &yes2) == 0 &&
		       yes2;
	default:
		return 0;
	}
}

/* th:community:<cid> slow, maxlen, links (HMGET) packed by modrule_pack();
 * absent fields are the defaults. */
static int64_t as_rules(const struct cache_reply *r)
{
	struct modrule m;
	const struct cache_reply *e;

	modrule_default(&m);
	if (cache_reply_type(r) != CACHE_ARRAY || cache_reply_count(r) != 3)
		return modrule_pack(&m);
	e = cache_reply_elem(r, 0);
	if (cache_reply_type(e) == CACHE_STR)
		m.slow_s = strtol(cache_reply_str(e, NULL), NULL, 10);
	e = cache_reply_elem(r, 1);
	if (cache_reply_type(e) == CACHE_STR)
		m.max_len = strtol(cache_reply_str(e, NULL), NULL, 10);
	e = cache_reply_elem(r, 2);
	if (cache_reply_type(e) == CACHE_STR)
		m.links = strcmp(cache_reply_str(e, NULL), "0") != 0;
	return modrule_pack(&m);
}

static int community_rules(int64_t cid, struct modrule *m)
{
	char rkey[48];
	const char *argv[] = {"HMGET", rkey, "slow", "maxlen", "links"};
	int64_t val;
	int rc;

	if (cached(K_RULES, cid, 0, &val)) {
		rc = 0;
	} else if (!mwatch_mirror_ok()) {
		/* the same packing in SQL (modrule.c): bit 31 marks it */
		rc = pg_lookup(K_RULES,
			       "SELECT (1::bigint << 31) | slow_mode_seconds | "
			       "(max_message_length::bigint << 17) | "
			       "(CASE WHEN links_allowed THEN 1::bigint << 30 ELSE 0 END) "
			       "FROM communities WHERE id = $1",
			       cid, 0, &val);
	} else {
		snprintf(rkey, sizeof(rkey), "th:community:%lld", (long long)cid);
		rc = lookup(K_RULES, cid, 0, 5, argv, as_rules, &val);
	}
	if (rc == 0)
		modrule_unpack(val, m);
	return rc;
}

int acl_chat_rules(int64_t ch, int64_t uid, struct modrule *m)
{
	int64_t cid, role, admin;

	modrule_default(m);
	if (channel_community(ch, &cid) < 0)
		return -1;
	if (cid == CHANNEL_DM)
		return 0;
	if (community_rules(cid, m) < 0)
		return -1;
	if (modrule_is_default(m))
		return 0; /* nothing to apply: no role needed */
	/* exempt: moderators and above (the role the ACL check just read,
	 * cached), site admins */
	if (member_role(cid, uid, &role) < 0 || site_admin(uid, &admin) < 0)
		return -1;
	if ((role & 0xff) >= ROLE_MODERATOR || admin)
		modrule_default(m);
	return 0;
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
