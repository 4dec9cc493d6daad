/* unreadcache: exact cached answers of GET /api/me/unread and of the first
 * page of GET /api/notifications.
 *
 * Those answers are thousands of rows of PostgreSQL (a caller with 1,000
 * channels: 4-5 ms of its CPU a request) and change far less often than
 * they are read.  An answer is kept with the versions (lib/unreadver.h) of
 * everything it depends on, read before PostgreSQL was: its user's, and for
 * the unread counts every community the user belongs to.  A read asks Redis
 * for those versions (one MGET) and serves the answer when none moved; any
 * change bumps one of them after its commit and before anyone hears of it,
 * so a served answer is never older than what the caller was told or did.
 *
 * Entries: th:uc:<name> in Redis, EX TH_UNREAD_CACHE_TTL (60 s), as
 *   <versions>\n<community ids, comma-separated>\n<the JSON reply>
 * and a copy in the worker (UC_LOCAL_SLOTS), so a hit moves only the
 * versions over the network, not the 90 KB of a large unread list.  Names:
 * "u<uid>" (unread), "n<uid>:<limit>:<unread 0|1>" (notifications).
 *
 * The notification items carry their actor's username and display name:
 * a profile change reaches a cached page within the TTL. */
#include "unreadcache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "config.h"
#include "db.h"
#include "ids.h"
#include "mono.h"
#include "reply.h"
#include "unreadver.h"
#include "vcache.h"

#define UC_LOCAL_SLOTS 64
#define UC_LOCAL_MAX (512 * 1024)             /* an unread list of 2,000 channels: ~180 KB */
#define UC_DEPS_MAX (UNREADVER_BATCH_MAX - 1) /* communities an entry may follow */
#define UC_VERSIONS_MAX (UNREADVER_BATCH_MAX * 21 + 1)

struct uc_local {
	char name[UNREADCACHE_NAME_MAX];
	char *data; /* the entry's value, malloc'd, NUL-terminated */
	size_t len;
	uint64_t expires_ms;
};

static struct uc_local locals[UC_LOCAL_SLOTS];

/* read once: it is asked several times a request */
static long ttl_s(void)
{
	static long ttl = -1;

	if (ttl < 0)
		ttl = (long)cfg_int("TH_UNREAD_CACHE_TTL", 60, 0, 3600);
	return ttl;
}

static struct uc_local *slot(const char *name)
{
	uint32_t h = 2166136261u;

	for (const char *p = name; *p; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	return &locals[h % UC_LOCAL_SLOTS];
}

/* The worker's copy of an entry: a followed by b. */
static void local_put(const char *name, const char *a, size_t alen, const char *b, size_t blen)
{
	struct uc_local *l = slot(name);
	size_t len = alen + blen;
	char *d;

	if (len > UC_LOCAL_MAX || strlen(name) >= sizeof(l->name))
		return;
	d = malloc(len + 1);
	if (!d)
		return; /* only a copy: the next hit asks Redis for the entry */
	memcpy(d, a, alen);
	memcpy(d + alen, b, blen);
	d[len] = '\0';
	free(l->data);
	l->data = d;
	l->len = len;
	snprintf(l->name, sizeof(l->name), "%s", name);
	l->expires_ms = mono_ms() + (uint64_t)ttl_s() * 1000u;
}

/* The keys of uid and of the communities in cids ("1,2,3" or ""), in the
 * arena; their count, or -1. */
static int dep_keys(struct arena *a, int64_t uid, const char *cids, size_t clen, const char ***out)
{
	const char **keys = arena_alloc(a, sizeof(*keys) * UNREADVER_BATCH_MAX);
	char *k;
	int n = 0;
	size_t i = 0;

	if (!keys || !(k = arena_alloc(a, UNREADVER_KEY_MAX)))
		return -1;
	unreadver_key(k, 'u', uid);
	keys[n++] = k;
	while (i < clen) {
		int64_t cid = 0;

		for (; i < clen && cids[i] >= '0' && cids[i] <= '9'; i++)
			cid = cid * 10 + (cids[i] - '0');
		if (i < clen && cids[i] != ',')
			return -1;
		i++;
		if (cid <= 0 || n == UNREADVER_BATCH_MAX ||
		    !(k = arena_alloc(a, UNREADVER_KEY_MAX)))
			return -1;
		unreadver_key(k, 'c', cid);
		keys[n++] = k;
	}
	*out = keys;
	return n;
}

/* 1 when the versions an entry (value, len bytes) was stored with are
 * those in Redis now; then *body and *blen are its reply. */
static int current(struct http_req *req, int64_t uid, const char *value, size_t len,
		   const char **body, size_t *blen)
{
	const char *nl1 = memchr(value, '\n', len), *nl2, *v;
	const char **keys, **argv;
	size_t *lens, vlen;
	struct cache_reply *r;
	int n, ok = 0;

	if (!nl1 || !(nl2 = memchr(nl1 + 1, '\n', len - (size_t)(nl1 + 1 - value))))
		return 0;
	n = dep_keys(req->arena, uid, nl1 + 1, (size_t)(nl2 - nl1 - 1), &keys);
	argv = arena_alloc(req->arena, sizeof(*argv) * (size_t)(n + 1));
	lens = arena_alloc(req->arena, sizeof(*lens) * (size_t)(n + 1));
	if (n < 1 || !argv || !lens)
		return 0;
	argv[0] = "MGET";
	lens[0] = 4;
	for (int i = 0; i < n; i++) {
		argv[i + 1] = keys[i];
		lens[i + 1] = strlen(keys[i]);
	}
	r = cache_cmd(n + 1, argv, lens);
	if (!r || cache_reply_type(r) != CACHE_ARRAY || cache_reply_count(r) != (size_t)n)
		goto out;
	/* compare "v1,v2,...": the stored line, element by element */
	v = value;
	for (int i = 0; i < n; i++) {
		const char *s = cache_reply_str(cache_reply_elem(r, (size_t)i), &vlen);

		if (!s || (size_t)(nl1 - v) < vlen || memcmp(v, s, vlen) != 0)
			goto out;
		v += vlen;
		if (v != nl1 && *v++ != ',')
			goto out;
	}
	if (v != nl1)
		goto out;
	*body = nl2 + 1;
	*blen = len - (size_t)(nl2 + 1 - value);
	ok = 1;
out:
	cache_reply_free(r);
	return ok;
}

static void reply(struct http_req *req, const char *body, size_t len)
{
	char *copy = arena_alloc(req->arena, len);

	if (!copy) {
		http_reply_error(req, TH_EINTERNAL, "out of memory", NULL);
		return;
	}
	memcpy(copy, body, len);
	http_reply_raw(req, 200, "application/json", copy, len);
}

int unreadcache_serve(struct http_req *req, const char *name)
{
	struct uc_local *l = slot(name);
	const char *body, *argv[2];
	char key[UNREADCACHE_NAME_MAX + 8];
	struct cache_reply *r;
	size_t blen, len;
	const char *value;

	if (ttl_s() == 0)
		return 0;
	vcache_retry(); /* a bump still waiting: an old entry could look current */
	if (l->data && strcmp(l->name, name) == 0 && mono_ms() < l->expires_ms &&
	    current(req, req->user_id, l->data, l->len, &body, &blen)) {
		reply(req, body, blen);
		return 1;
	}
	snprintf(key, sizeof(key), "th:uc:%s", name);
	argv[0] = "GET";
	argv[1] = key;
	r = cache_reply_own(req->arena, cache_cmd(2, argv, NULL));
	if (!r || cache_reply_type(r) != CACHE_STR || !(value = cache_reply_str(r, &len)) ||
	    !current(req, req->user_id, value, len, &body, &blen))
		return 0;
	local_put(name, value, len, "", 0);
	reply(req, body, blen);
	return 1;
}

int unreadcache_begin(struct http_req *req, const char *name, int communities,
		      struct unreadcache_fill *f)
{
	char ukey[UNREADVER_KEY_MAX];
	const char *uk = ukey, **keys;
	const char *cids = "";
	size_t used;
	int n;

	memset(f, 0, sizeof(*f));
	if (ttl_s() == 0 || strlen(name) >= sizeof(f->name))
		return 0;
	f->versions = arena_alloc(req->arena, UC_VERSIONS_MAX);
	if (!f->versions)
		return 0;
	/* the user's version before their memberships: a join or a removal
	 * that commits after this read bumps it after, so an entry built from
	 * an older list of communities is never current; one before it is in
	 * the list read next */
	unreadver_key(ukey, 'u', req->user_id);
	if (unreadver_read(&uk, 1, f->versions, UC_VERSIONS_MAX) < 0)
		return 0;
	if (communities) {
		char me[24];
		const char *params[] = {ids_text(me, req->user_id)};
		/* every membership, readable or not: a ban lifted or a channel made
		 * in any of them changes the answer (through a version bump) */
		struct db_res *r = db_own(req,
					  db_exec(DB_PRIMARY,
						  "SELECT coalesce(string_agg(community_id::text, "
						  "',' ORDER BY community_id), ''), count(*) "
						  "FROM memberships WHERE user_id = $1",
						  1, params));

		if (!r || db_res_rows(r) != 1 || atoi(db_res_get(r, 0, 1)) > UC_DEPS_MAX)
			return 0; /* not cached: PostgreSQL answers, as without a cache */
		cids = db_res_get(r, 0, 0);
	}
	/* then the communities' versions, before the route's query */
	n = dep_keys(req->arena, req->user_id, cids, strlen(cids), &keys);
	f->cids = arena_strdup(req->arena, cids);
	if (n < 1 || !f->cids)
		return 0;
	used = strlen(f->versions);
	if (n > 1 &&
	    (used + 2 > UC_VERSIONS_MAX || unreadver_read(keys + 1, n - 1, f->versions + used + 1,
							  UC_VERSIONS_MAX - used - 1) < 0))
		return 0;
	if (n > 1)
		f->versions[used] = ',';
	snprintf(f->name, sizeof(f->name), "%s", name);
	f->ok = 1;
	return 1;
}

void unreadcache_end(struct http_req *req, const struct unreadcache_fill *f)
{
	const struct http_resp *resp = &req->resp;
	char key[UNREADCACHE_NAME_MAX + 8];
	size_t vlen, clen;
	char *head;

	if (!f->ok || resp->status != 200 || !resp->body)
		return;
	/* the entry: "<versions>\n<community ids>\n" then the reply */
	vlen = strlen(f->versions);
	clen = strlen(f->cids);
	head = arena_alloc(req->arena, vlen + clen + 2);
	if (!head)
		return;
	memcpy(head, f->versions, vlen);
	head[vlen] = '\n';
	memcpy(head + vlen + 1, f->cids, clen);
	head[vlen + 1 + clen] = '\n';
	snprintf(key, sizeof(key), "th:uc:%s", f->name);
	vcache_store(req->arena, key, head, vlen + clen + 2, resp->body, resp->body_len, ttl_s());
	local_put(f->name, head, vlen + clen + 2, resp->body, resp->body_len);
}
