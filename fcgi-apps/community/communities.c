/* communities: create, list, get, patch, delete. */
#include <json-c/json.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "community.h"
#include "db.h"
#include "events.h"
#include "jh.h"
#include "userlimits.h"
#include "log.h"
#include "mirror.h"
#include "modrule.h"
#include "page.h"
#include "reply.h"
#include "unreadver.h"

static int slug_valid(const char *s)
{
	size_t n = strlen(s);

	if (n < 3 || n > 40)
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-'))
			return 0;
	return 1;
}

/* visibility: absent -> *out NULL (when optional); else public|private. */
static int visibility_or_400(struct http_req *req, unsigned flags, const char **out)
{
	if (jh_string_or_400(req, req->json, "visibility", 1, 16, flags, out) < 0)
		return -1;
	if (*out && strcmp(*out, "public") != 0 && strcmp(*out, "private") != 0) {
		http_reply_error(req, TH_EVALIDATION, "visibility must be public or private",
				 "visibility");
		return -1;
	}
	return 0;
}

/* The community as the caller sees it, replied with status. */
static void reply_community(struct http_req *req, int status, int64_t id, enum db_role role)
{
	char cid[24], uid[24];
	const char *params[] = {ids_text(cid, id), ids_text(uid, req->user_id)};
	struct db_res *r;

	r = db_exec_or_reply(req, role,
			     "SELECT " COMMUNITY_COLS " FROM communities c "
			     "LEFT JOIN memberships m ON m.community_id = c.id AND m.user_id = $2 "
			     "WHERE c.id = $1",
			     2, params);
	if (!r)
		return;
	if (db_res_rows(r) != 1) {
		http_reply_error(req, TH_ENOTFOUND, "no such community", NULL);
		return;
	}
	http_reply_json(req, status, community_json(r, 0, 0));
}

void communities_create(struct http_req *req)
{
	const char *slug, *name, *desc, *vis;
	char uid[24];
	struct db_res *r;
	int64_t cid, chid;

	if (jh_string_or_400(req, req->json, "slug", 3, 40, JH_REQUIRED, &slug) < 0 ||
	    jh_string_or_400(req, req->json, "name", 1, 100, JH_REQUIRED | JH_NAME, &name) < 0 ||
	    jh_string_or_400(req, req->json, "description", 0, 2000, JH_MULTILINE, &desc) < 0 ||
	    visibility_or_400(req, JH_REQUIRED, &vis) < 0)
		return;
	if (!slug_valid(slug)) {
		http_reply_error(req, TH_EVALIDATION, "slug must be 3 to 40 of a-z, 0-9 and -",
				 "slug");
		return;
	}
	if (limits_take_or_reply(req, LIMIT_COMMUNITY) < 0 || db_begin_or_reply(req) < 0)
		return;
	{
		const char *params[] = {slug, name, desc ? desc : "", vis,
					ids_text(uid, req->user_id)};

		r = db_own(req, db_exec(DB_PRIMARY,
					"INSERT INTO communities (slug, name, description, "
					"visibility, owner_id, "
					"member_count) VALUES ($1, $2, $3, $4, $5, 1) RETURNING id",
					5, params));
	}
	if (!r) {
		if (db_last_err() == TH_ECONFLICT)
			http_reply_error(req, TH_ECONFLICT, "slug is taken", "slug");
		else
			http_reply_error(req,
					 db_last_err() == TH_EUNAVAILABLE ? TH_EUNAVAILABLE
									  : TH_EINTERNAL,
					 NULL, NULL);
		db_rollback();
		return;
	}
	cid = strtoll(db_res_get(r, 0, 0), NULL, 10);
	{
		char c[24];
		const char *params[] = {ids_text(c, cid), uid};

		/* the creator owns it; every community starts with #general */
		r = db_exec_or_reply(req, DB_PRIMARY,
				     "WITH m AS (INSERT INTO memberships (community_id, user_id, "
				     "role) "
				     "VALUES ($1, $2, 'owner')) "
				     "INSERT INTO channels (community_id, name) VALUES ($1, "
				     "'general') "
				     "RETURNING id",
				     2, params);
	}
	if (!r)
		return;
	chid = strtoll(db_res_get(r, 0, 0), NULL, 10);
	if (events_emit(req, "channel_created", cid, "channel_id", chid, NULL, 0) < 0)
		return;
	if (db_commit_or_reply(req) < 0)
		return;
	log_info("audit: community %lld (%s) created by user %s", (long long)cid, slug, uid);
	{
		struct modrule rules;

		modrule_default(&rules); /* the columns' defaults (migration 0035) */
		mirror_community(cid, vis, &rules);
	}
	mirror_member(cid, req->user_id, "owner");
	mirror_channel(chid, cid);
	reply_community(req, 201, cid, DB_PRIMARY);
}

static struct json_object *community_row(const struct db_res *r, int row, void *ctx)
{
	(void)ctx;
	return community_json(r, row, 0);
}

void communities_list(struct http_req *req)
{
	struct page p;
	char uid[24];
	struct db_res *r;

	if (page_parse_or_400(req, 1, INT64_MAX, &p) < 0)
		return;
	{
		const char *params[] = {ids_text(uid, req->user_id), p.key_s[0], p.limit_s};

		/* newest first: public ones, and private ones the caller is in.
		 * Membership decides what a signed-in caller sees (a join, a
		 * removal, a ban): the primary; a stranger sees public ones
		 * only, which a replica may serve. */
		r = db_exec_or_reply(req, req->user_id ? DB_PRIMARY : DB_READ,
				     "SELECT " COMMUNITY_COLS " FROM communities c "
				     "LEFT JOIN memberships m ON m.community_id = c.id AND "
				     "m.user_id = $1 "
				     "WHERE (c.visibility = 'public' OR m.user_id IS NOT NULL) "
				     "AND c.id < $2 ORDER BY c.id DESC LIMIT $3",
				     3, params);
	}
	if (!r)
		return;
	page_reply(req, &p, r, 0, community_row, NULL);
}

void communities_get(struct http_req *req)
{
	struct community c;

	if (community_access_param(req, "id", ROLE_NONE, &c) < 0)
		return;
	reply_community(req, 200, c.id, DB_PRIMARY);
}

/* The chat rules of a PATCH (lib/modrule.h): each absent one is NULL in
 * vals (slow mode, max length, links as "true"/"false"); *any when one is
 * given.  0, or -1 replied 400. */
static int rules_or_400(struct http_req *req, char bufs[3][24], const char *vals[3], int *any)
{
	int64_t slow, len;
	bool has_slow, has_len, has_links, links;

	if (jh_int_or_400(req, req->json, "slow_mode_seconds", 0, MODRULE_SLOW_MAX, false,
			  &has_slow, &slow) < 0 ||
	    jh_int_or_400(req, req->json, "max_message_length", 1, MODRULE_LEN_MAX, false, &has_len,
			  &len) < 0 ||
	    jh_bool_or_400(req, req->json, "links_allowed", false, &has_links, &links) < 0)
		return -1;
	vals[0] = has_slow ? ids_text(bufs[0], slow) : NULL;
	vals[1] = has_len ? ids_text(bufs[1], len) : NULL;
	vals[2] = has_links ? (links ? "true" : "false") : NULL;
	*any = has_slow || has_len || has_links;
	return 0;
}

void communities_patch(struct http_req *req)
{
	struct community c;
	const char *name, *desc, *vis, *rules[3];
	char cid[24], bufs[3][24];
	struct db_res *r;
	struct modrule m;
	int any_rule;

	if (community_access_param(req, "id", ROLE_ADMIN, &c) < 0)
		return;
	if (jh_string_or_400(req, req->json, "name", 1, 100, JH_NAME, &name) < 0 ||
	    jh_string_or_400(req, req->json, "description", 0, 2000, JH_MULTILINE, &desc) < 0 ||
	    visibility_or_400(req, 0, &vis) < 0 || rules_or_400(req, bufs, rules, &any_rule) < 0)
		return;
	if (limits_take_or_reply(req, LIMIT_MANAGE) < 0 || db_begin_or_reply(req) < 0)
		return;
	{
		const char *params[] =
			{ids_text(cid, c.id), name, desc, vis, rules[0], rules[1], rules[2]};

		/* NULL parameters leave a field as it is */
		r = db_exec_or_reply(req, DB_PRIMARY,
				     "UPDATE communities SET name = coalesce($2, name), "
				     "description = coalesce($3, description), "
				     "visibility = coalesce($4, visibility), "
				     "slow_mode_seconds = coalesce($5::int, slow_mode_seconds), "
				     "max_message_length = coalesce($6::int, max_message_length), "
				     "links_allowed = coalesce($7::boolean, links_allowed) "
				     "WHERE id = $1 "
				     "RETURNING slow_mode_seconds, max_message_length, "
				     "links_allowed",
				     7, params);
	}
	if (!r)
		return;
	if (db_res_rows(r) != 1) { /* deleted since the access check */
		db_rollback();
		http_reply_error(req, TH_ENOTFOUND, "no such community", NULL);
		return;
	}
	m.slow_s = strtol(db_res_get(r, 0, 0), NULL, 10);
	m.max_len = strtol(db_res_get(r, 0, 1), NULL, 10);
	m.links = strcmp(db_res_get(r, 0, 2), "t") == 0;
	if (events_emit(req, "community_updated", c.id, NULL, 0, NULL, 0) < 0)
		return;
	if (db_commit_or_reply(req) < 0)
		return;
	if (vis)
		feedcache_bump_access(c.id);
	/* the broker enforces the rules from the mirror (lib/modrule.h) */
	mirror_community(c.id, vis, any_rule ? &m : NULL);
	feedcache_bump(c.id);
	reply_community(req, 200, c.id, DB_PRIMARY);
}

void communities_delete(struct http_req *req)
{
	struct community c;
	struct callexit x;
	char cid[24];
	const char *params[] = {cid};
	struct db_res *r;
	int64_t *chids;
	int i, n;

	if (community_access_param(req, "id", ROLE_OWNER, &c) < 0)
		return;
	ids_text(cid, c.id);
	if (db_begin_or_reply(req) < 0)
		return;
	/* the event goes out before the rows go: it names the community only */
	if (events_emit(req, "community_deleted", c.id, NULL, 0, NULL, 0) < 0 ||
	    callexit_community(req, c.id, &x) < 0)
		return;
	r = db_exec_or_reply(req, DB_PRIMARY,
			     "WITH ch AS (SELECT id FROM channels WHERE community_id = $1), "
			     "d AS (DELETE FROM communities WHERE id = $1) SELECT id FROM ch",
			     1, params);
	if (!r)
		return;
	/* its members' unread counts lose its channels before the reply */
	if (unreadver_commit() < 0) {
		http_reply_error(req, TH_EUNAVAILABLE, "database unavailable", NULL);
		return;
	}
	n = db_res_rows(r);
	chids = arena_alloc(req->arena, sizeof(*chids) * (size_t)(n + 1));
	for (i = 0; chids && i < n; i++)
		chids[i] = strtoll(db_res_get(r, i, 0), NULL, 10);
	log_info("audit: community %s deleted by user %lld", cid, (long long)req->user_id);
	feedcache_bump_access(c.id);
	mirror_community_gone(c.id, chids, chids ? n : 0);
	callexit_mirror_community(req, &x);
	feedcache_bump(c.id);
	http_reply_empty(req, 204);
}
