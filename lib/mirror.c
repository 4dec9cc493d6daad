/* mirror: single-key Redis commands (Cluster-safe), errors logged. */
#include "mirror.h"

#include <stdio.h>

#include "cache.h"
#include "log.h"
#include "metrics.h"
#include "modrule.h"

#define MIRROR_MARKER "th:mirror:epoch"
#define MIRROR_GEN "th:mirror:gen"
#define MIRROR_LOG "th:mirror:log"
/* entries the log keeps (about: MAXLEN ~ trims whole nodes); the broker
 * reads it once a second, so this is the most changes a second it follows
 * key by key before it drops every answer instead */
#define MIRROR_LOG_KEEP "10000"

/* An update this process could not write: the mirror is stale until it is
 * rebuilt.  The next successful write drops the marker th:mirror:epoch, and
 * the broker plugin, finding it missing, rebuilds the mirror from PostgreSQL
 * (realtime-bridge/plugin/mwatch.h): a lost update heals without an admin. */
static int lost;

/* Drops the marker: the broker rebuilds the mirror from PostgreSQL (and its
 * cached membership answers, tagged with the marker, die with it).  0 when
 * Redis took it. */
static int drop_marker(void)
{
	static const char *const del[] = {"DEL", MIRROR_MARKER};
	struct cache_reply *d = cache_cmd(2, del, NULL);
	int ok = d && cache_reply_type(d) != CACHE_ERROR;

	cache_reply_free(d);
	return ok ? 0 : -1;
}

static void run(int argc, const char *const *argv)
{
	static int errors = -2;
	struct cache_reply *r = cache_cmd(argc, argv, NULL);

	if (!r || cache_reply_type(r) == CACHE_ERROR) {
		if (errors == -2)
			errors = metrics_counter("mirror_errors_total");
		metrics_add(errors, 1);
		log_warn("mirror: %s %s failed (%s); the mirror will be rebuilt", argv[0], argv[1],
			 r ? cache_reply_str(r, NULL) : cache_last_error());
		/* at once when Redis takes the DEL (a failed write may be this
		 * process's last: waiting for the next one could wait forever),
		 * else at the next write that succeeds */
		lost = drop_marker() < 0;
	} else if (lost && drop_marker() == 0) {
		lost = 0;
		log_info("mirror: marker dropped after a lost update; the broker rebuilds it");
	}
	cache_reply_free(r);
}

#define ID(buf, v) snprintf(buf, sizeof(buf), "%lld", (long long)(v))

/* Before each change's writes: a rebuild running meanwhile sees the
 * generation move and rebuilds again (scripts/mirror-rebuild), so its older
 * snapshot never overwrites this change. */
void mirror_gen_bump(void)
{
	static const char *const argv[] = {"INCR", MIRROR_GEN};

	run(2, argv);
}

/* After a change's writes, before its last generation bump: which cached
 * answers of the broker plugin it made old (what: MIRROR_LOG_* of
 * mirror.h; b 0 when the key has one id).  The plugin reads the entries
 * added since its last look and forgets those answers only, so a join in
 * one community does not make every broker ask Redis again about every
 * subscriber of every other one. */
static void changed(const char *what, int64_t a, int64_t b)
{
	char ida[24], idb[24];
	const char *const argv[] = {"XADD", MIRROR_LOG, "MAXLEN", "~", MIRROR_LOG_KEEP,
				    "*",    "k",        what,     "a", ida,
				    "b",    idb};

	ID(ida, a);
	ID(idb, b);
	run(12, argv);
}

void mirror_community(int64_t cid, const char *visibility, const struct modrule *rules)
{
	char key[48], slow[24], len[24];
	const char *argv[10] = {"HSET", key};
	int n = 2;

	if (!visibility && !rules)
		return;
	mirror_gen_bump();
	snprintf(key, sizeof(key), "th:community:%lld", (long long)cid);
	if (visibility) {
		argv[n++] = "visibility";
		argv[n++] = visibility;
	}
	if (rules) {
		ID(slow, rules->slow_s);
		ID(len, rules->max_len);
		argv[n++] = "slow";
		argv[n++] = slow;
		argv[n++] = "maxlen";
		argv[n++] = len;
		argv[n++] = "links";
		argv[n++] = rules->links ? "1" : "0";
	}
	run(n, argv);
	changed(MIRROR_LOG_COMMUNITY, cid, 0);
	mirror_gen_bump(); /* after: see mirror.h */
}

/* role: the member's role (HSET, SADD), or NULL for a membership gone
 * (HDEL, SREM). */
static void membership(int64_t cid, int64_t uid, const char *role)
{
	char key[48], ukey[64], u[24], c[24];
	const char *a1[] = {role ? "HSET" : "HDEL", key, u, role};
	const char *a2[] = {role ? "SADD" : "SREM", ukey, c};

	mirror_gen_bump();
	snprintf(key, sizeof(key), "th:members:%lld", (long long)cid);
	snprintf(ukey, sizeof(ukey), "th:user:%lld:communities", (long long)uid);
	ID(u, uid);
	ID(c, cid);
	run(role ? 4 : 3, a1);
	run(3, a2);
	changed(MIRROR_LOG_MEMBER, cid, uid);
	mirror_gen_bump(); /* after: see mirror.h */
}

void mirror_member(int64_t cid, int64_t uid, const char *role)
{
	membership(cid, uid, role);
}

void mirror_member_gone(int64_t cid, int64_t uid)
{
	membership(cid, uid, NULL);
}

void mirror_ban(int64_t cid, int64_t uid)
{
	char key[48], u[24];
	const char *argv[] = {"SADD", key, u};

	mirror_gen_bump();
	snprintf(key, sizeof(key), "th:banned:%lld", (long long)cid);
	ID(u, uid);
	run(3, argv);
	mirror_member_gone(cid, uid);
}

void mirror_unban(int64_t cid, int64_t uid)
{
	char key[48], u[24];
	const char *argv[] = {"SREM", key, u};

	mirror_gen_bump();
	snprintf(key, sizeof(key), "th:banned:%lld", (long long)cid);
	ID(u, uid);
	run(3, argv);
	changed(MIRROR_LOG_MEMBER, cid, uid);
	mirror_gen_bump(); /* after: see mirror.h */
}

void mirror_channel(int64_t chid, int64_t cid)
{
	char key[48], c[24];
	const char *argv[] = {"SET", key, c};

	mirror_gen_bump();
	snprintf(key, sizeof(key), "th:channel:%lld", (long long)chid);
	ID(c, cid);
	run(3, argv);
	changed(MIRROR_LOG_CHANNEL, chid, 0);
	mirror_gen_bump(); /* after: see mirror.h */
}

void mirror_dm_channel(int64_t chid)
{
	char key[48];
	const char *argv[] = {"SET", key, "dm"};

	mirror_gen_bump();
	snprintf(key, sizeof(key), "th:channel:%lld", (long long)chid);
	run(3, argv);
	changed(MIRROR_LOG_CHANNEL, chid, 0);
	mirror_gen_bump(); /* after: see mirror.h */
}

void mirror_dm_member(int64_t chid, int64_t uid, int muted)
{
	char key[48], u[24];
	const char *argv[] = {"HSET", key, u, muted ? "muted" : "member"};

	mirror_gen_bump();
	snprintf(key, sizeof(key), "th:dm:%lld", (long long)chid);
	ID(u, uid);
	run(4, argv);
	changed(MIRROR_LOG_DM, chid, uid);
	mirror_gen_bump(); /* after: see mirror.h */
}

void mirror_dm_member_gone(int64_t chid, int64_t uid)
{
	char key[48], u[24];
	const char *argv[] = {"HDEL", key, u};

	mirror_gen_bump();
	snprintf(key, sizeof(key), "th:dm:%lld", (long long)chid);
	ID(u, uid);
	run(3, argv);
	changed(MIRROR_LOG_DM, chid, uid);
	mirror_gen_bump(); /* after: see mirror.h */
}

void mirror_community_gone(int64_t cid, const int64_t *chids, int n)
{
	char key[48], c[24];
	const char *hk[] = {"HKEYS", key};
	struct cache_reply *r;
	size_t i;

	mirror_gen_bump();
	ID(c, cid);
	snprintf(key, sizeof(key), "th:members:%lld", (long long)cid);
	r = cache_cmd(2, hk, NULL);
	for (i = 0; r && i < cache_reply_count(r); i++) {
		char ukey[64];
		const char *srem[] = {"SREM", ukey, c};

		snprintf(ukey, sizeof(ukey), "th:user:%s:communities",
			 cache_reply_str(cache_reply_elem(r, i), NULL));
		run(3, srem);
	}
	cache_reply_free(r);
	{
		const char *del[] = {"DEL", key};

		run(2, del);
		snprintf(key, sizeof(key), "th:banned:%lld", (long long)cid);
		run(2, del);
		snprintf(key, sizeof(key), "th:community:%lld", (long long)cid);
		run(2, del);
		for (int k = 0; k < n; k++) {
			snprintf(key, sizeof(key), "th:channel:%lld", (long long)chids[k]);
			run(2, del);
		}
	}
	/* every member's answers and the channels': rare enough to drop all */
	changed(MIRROR_LOG_ALL, cid, 0);
	mirror_gen_bump(); /* after: see mirror.h */
}
