/* dms: direct messages (API.md v1.1 "Direct messages and blocking").
 *
 * A DM is a channel of kind 'dm' with no community and 2..RT_DM_MAX members
 * (dm_members, db/migrations/0018_dms_reads.sql).  History, posting, edits,
 * typing and receipts are the channel routes and MQTT topics; who may read or
 * write is channel_access() (access.c, lib/policy.c).  Here: opening one,
 * the caller's list, leaving a group.
 *
 * A 1:1 DM is one per pair: its channel row carries the pair (pair_lo <
 * pair_hi) under a unique key, so two requests opening it at the same
 * instant insert one row (ON CONFLICT DO NOTHING) and both answer with it.
 * A group DM is new each time it is opened.  Members learn of a new DM and of
 * a member leaving on user/<id>/inbox ({"type": "dm_created"|"dm_left",
 * "channel_id", "user_id"?}); the broker learns of them through the mirror
 * (dmmirror.c). */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "db.h"
#include "jh.h"
#include "userlimits.h"
#include "log.h"
#include "page.h"
#include "realtime.h"
#include "reply.h"

#define TS(c) TH_TIME_SQL(c)
#define DM_USER_JSON                                                             \
	"json_build_object('id', u.id, 'username', u.username, 'display_name', " \
	"u.display_name, 'created_at', " TS("u.created_at") ")"
#define DM_MEMBERS_JSON                                                                    \
	"(SELECT json_agg(" DM_USER_JSON " ORDER BY u.id) FROM dm_members d JOIN users u " \
	"ON u.id = d.user_id WHERE d.channel_id = ch.id)"
#define DM_M_CREATED TS("m.created_at")
#define DM_M_EDITED TS("m.edited_at")
#define DM_M_DELETED TS("m.deleted_at")
#define DM_LAST_JSON                                                                       \
	"(SELECT json_build_object('id', m.id, 'channel_id', m.channel_id, 'seq', m.seq, " \
	"'sender', CASE WHEN u.id IS NOT NULL THEN " DM_USER_JSON " END, 'body', m.body, " \
	"'reply_to', m.reply_to, "                                                         \
	"'created_at', " DM_M_CREATED ", 'edited_at', " DM_M_EDITED ", "                   \
	"'deleted_at', " DM_M_DELETED ") FROM messages m LEFT JOIN users u ON u.id = "     \
	"m.sender_id WHERE m.channel_id = ch.id AND m.seq = ch.last_seq)"
#define DM_CREATED TS("ch.created_at")
#define DM_ACTIVE TS("ch.active_at")
/* A DM as its members see it, from ch (channels), r (the caller's
 * channel_reads row): the channel of API.md plus members, group, last_seq,
 * read_seq, unread, last_message (the message with the channel's last seq:
 * null when none) and active_at (its last message, or its creation). */
#define DM_ITEM_JSON                                                                           \
	"json_build_object('id', ch.id, 'kind', ch.kind, 'community_id', NULL, 'name', NULL, " \
	"'topic', NULL, 'group', ch.pair_lo IS NULL, 'created_at', " DM_CREATED ", "           \
	"'active_at', " DM_ACTIVE ", 'last_seq', ch.last_seq, "                                \
	"'read_seq', coalesce(r.read_seq, 0), "                                                \
	"'unread', ch.last_seq - coalesce(r.read_seq, 0), 'mentions', "                        \
	"channel_mentions(me.user_id, ch.id, coalesce(r.read_seq, 0)), "                       \
	"'members', " DM_MEMBERS_JSON ", 'last_message', " DM_LAST_JSON ")::text"
#define DM_FROM                                                                    \
	" FROM dm_members me JOIN channels ch ON ch.id = me.channel_id LEFT JOIN " \
	"channel_reads r ON r.user_id = me.user_id AND r.channel_id = ch.id "
/* the list's order: latest activity first (microseconds), then id */
#define DM_AKEY "(extract(epoch FROM ch.active_at) * 1000000)::bigint"

/* The JSON of column col of row (a DM_ITEM_JSON), a new object; NULL when
 * out of memory. */
static struct json_object *item(const struct db_res *r, int row, int col)
{
	const char *s = db_res_get(r, row, col);

	return jh_parse(s, strlen(s));
}

/* Replies status with DM chid as the caller sees it. */
static void dm_reply(struct http_req *req, int status, int64_t chid)
{
	char c[24], u[24];
	const char *params[] = {ids_text(c, chid), ids_text(u, req->user_id)};
	struct db_res *r;
	struct json_object *o;

	r = db_exec_or_reply(req, DB_PRIMARY,
			     "SELECT " DM_ITEM_JSON DM_FROM "WHERE me.channel_id = $1 AND "
			     "me.user_id = $2",
			     2, params);
	if (!r)
		return;
	if (db_res_rows(r) != 1) { /* left or gone since */
		http_reply_error(req, TH_ENOTFOUND, "no such conversation", NULL);
		return;
	}
	o = item(r, 0, 0);
	if (!o) {
		http_reply_error(req, TH_EINTERNAL, "out of memory", NULL);
		return;
	}
	http_reply_json(req, status, o);
}

/* user_ids of the body: 1..RT_DM_MAX - 1 distinct user ids, none the
 * caller's, sorted into ids.  The count, or -1 with 400 replied. */
static int user_ids_or_400(struct http_req *req, int64_t *ids)
{
	struct json_object *a;
	size_t n;
	const char *why = NULL;

	if (!json_object_object_get_ex(req->json, "user_ids", &a) || !a ||
	    !json_object_is_type(a, json_type_array)) {
		http_reply_error(req, TH_EVALIDATION, "user_ids must be an array of user ids",
				 "user_ids");
		return -1;
	}
	n = json_object_array_length(a);
	if (n < 1 || n > RT_DM_MAX - 1) {
		http_reply_error(req, TH_EVALIDATION,
				 "user_ids must name 1 to 9 other people (a DM holds at most 10)",
				 "user_ids");
		return -1;
	}
	for (size_t i = 0; i < n && !why; i++) {
		struct json_object *v = json_object_array_get_idx(a, i);

		if (!v || !json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 1)
			why = "user_ids must be an array of user ids (positive integers)";
		else if ((ids[i] = json_object_get_int64(v)) == req->user_id)
			why = "a DM is with someone else: user_ids must not name you";
	}
	/* sorted: the pair of a 1:1, and duplicates side by side */
	for (size_t i = 1; i < n && !why; i++)
		for (size_t j = i; j > 0 && ids[j - 1] > ids[j]; j--) {
			int64_t t = ids[j];

			ids[j] = ids[j - 1];
			ids[j - 1] = t;
		}
	for (size_t i = 1; i < n && !why; i++)
		if (ids[i] == ids[i - 1])
			why = "user_ids must not name anyone twice";
	if (why) {
		http_reply_error(req, TH_EVALIDATION, why, "user_ids");
		return -1;
	}
	return (int)n;
}

/* "{a,b,c}" of ids[0..n) into the arena, NULL when out of memory. */
static char *pg_ids(struct http_req *req, const int64_t *ids, int n)
{
	char *s = arena_printf(req->arena, "{");

	for (int i = 0; s && i < n; i++)
		s = arena_printf(req->arena, "%s%s%lld", s, i ? "," : "", (long long)ids[i]);
	return s ? arena_printf(req->arena, "%s}", s) : NULL;
}

/* POST /api/dms {user_ids: [..]}: 201 with the new DM; a 1:1 that exists
 * already: 200 with it (the rate limit counts only DMs opened). */
void dms_create(struct http_req *req)
{
	int64_t ids[RT_DM_MAX], chid = 0;
	char me[24], lo[24], hi[24], c[24], *others, *all;
	struct db_res *r;
	struct json_object *ev;
	int n, existed = 0;

	n = user_ids_or_400(req, ids);
	if (n < 0)
		return;
	ids_text(me, req->user_id);
	others = pg_ids(req, ids, n);
	ids[n] = req->user_id;
	all = pg_ids(req, ids, n + 1);
	if (!others || !all) {
		http_reply_error(req, TH_EINTERNAL, "out of memory", NULL);
		return;
	}
	/* the pair of a 1:1 (ignored for a group) */
	ids_text(lo, ids[0] < req->user_id ? ids[0] : req->user_id);
	ids_text(hi, ids[0] < req->user_id ? req->user_id : ids[0]);
	{
		const char *params[] = {others, me, lo, hi, n == 1 ? "t" : "f"};

		r = db_exec_or_reply(req, DB_PRIMARY,
				     "SELECT (SELECT count(*) FROM users WHERE id = "
				     "ANY($1::bigint[])), "
				     "EXISTS (SELECT 1 FROM blocks WHERE blocker_id = "
				     "ANY($1::bigint[]) AND "
				     "blocked_id = $2), "
				     "(SELECT id FROM channels WHERE $5::boolean AND pair_lo = $3 "
				     "AND "
				     "pair_hi = $4)",
				     5, params);
	}
	if (!r)
		return;
	if (atoi(db_res_get(r, 0, 0)) != n) {
		http_reply_error(req, TH_EVALIDATION, "user_ids names a user who does not exist",
				 "user_ids");
		return;
	}
	if (strcmp(db_res_get(r, 0, 1), "t") == 0) {
		http_reply_error(req, TH_EFORBIDDEN,
				 "you cannot open a conversation with someone who blocked you",
				 NULL);
		return;
	}
	if (!db_res_isnull(r, 0, 2)) {
		dm_reply(req, 200, strtoll(db_res_get(r, 0, 2), NULL, 10));
		return;
	}
	if (limits_take_or_reply(req, LIMIT_DM) < 0 || db_begin_or_reply(req) < 0)
		return;
	if (n == 1) {
		const char *params[] = {lo, hi};

		r = db_exec_or_reply(req, DB_PRIMARY,
				     "INSERT INTO channels (kind, name, pair_lo, pair_hi) "
				     "VALUES ('dm', 'dm', $1, $2) ON CONFLICT ON CONSTRAINT "
				     "channels_pair_key DO NOTHING RETURNING id",
				     2, params);
		if (r && db_res_rows(r) == 0) {
			/* opened by a request at the same instant: that one */
			db_rollback();
			r = db_exec_or_reply(req, DB_PRIMARY,
					     "SELECT id FROM channels WHERE pair_lo = $1 AND "
					     "pair_hi = $2",
					     2, params);
			existed = 1;
		}
	} else {
		r = db_exec_or_reply(req, DB_PRIMARY,
				     "INSERT INTO channels (kind, name) VALUES ('dm', 'dm') "
				     "RETURNING id",
				     0, NULL);
	}
	if (!r)
		return;
	if (db_res_rows(r) != 1) {
		http_reply_error(req, TH_EINTERNAL, "the conversation could not be opened", NULL);
		return;
	}
	chid = strtoll(db_res_get(r, 0, 0), NULL, 10);
	if (existed) {
		dm_reply(req, 200, chid);
		return;
	}
	{
		const char *params[] = {ids_text(c, chid), all};

		r = db_exec_or_reply(req, DB_PRIMARY,
				     "INSERT INTO dm_members (channel_id, user_id) "
				     "SELECT $1, unnest($2::bigint[])",
				     2, params);
	}
	if (!r)
		return;
	{
		/* a `dm` notification for the others (notify() skips the opener and
		 * whoever blocked them: db/migrations/0024_notifications.sql) */
		const char *params[] = {ids_text(c, chid), all, ids_text(me, req->user_id)};

		r = db_exec_or_reply(req, DB_PRIMARY,
				     "SELECT notify($2::bigint[], 'dm', $3, NULL, NULL, NULL, $1, "
				     "NULL, NULL)",
				     3, params);
	}
	if (!r)
		return;
	ev = json_object_new_object();
	if (!ev) {
		http_reply_error(req, TH_EINTERNAL, "out of memory", NULL);
		return;
	}
	{
		struct rt_channel ch = {.id = chid, .cm = {.dm = 1}, .nmembers = n + 1};

		memcpy(ch.members, ids, sizeof(int64_t) * (size_t)(n + 1));
		json_object_object_add(ev, "type", json_object_new_string("dm_created"));
		json_object_object_add(ev, "channel_id", json_object_new_int64(chid));
		json_object_object_add(ev, "by", json_object_new_int64(req->user_id));
		channel_event_inbox(&ch, ev);
	}
	if (events_emit_json(req, ev) < 0)
		return;
	/* the broker learns the members before they learn of the DM (the
	 * dm_created event goes after the commit): a member who subscribes at
	 * once is not refused.  A new id: keys of a DM that fails to commit
	 * name a channel nobody can find */
	dm_mirror(chid);
	if (db_commit_or_reply(req) < 0)
		return;
	log_info("audit: user %lld opened DM %lld with %d others", (long long)req->user_id,
		 (long long)chid, n);
	dm_reply(req, 201, chid);
}

/* GET /api/dms[?cursor=][&limit=]: the caller's DMs, latest activity first. */
void dms_list(struct http_req *req)
{
	struct page pg;
	char me[24];
	struct db_res *r;
	struct json_object *items;
	const char *next = NULL;
	int n;

	if (page_parse_or_400(req, 2, INT64_MAX, &pg) < 0)
		return;
	{
		const char *params[] = {ids_text(me, req->user_id), pg.key_s[0], pg.key_s[1],
					pg.limit_s};

		r = db_exec_or_reply(req, DB_PRIMARY,
				     "SELECT " DM_ITEM_JSON ", " DM_AKEY ", ch.id" DM_FROM
				     "WHERE me.user_id = $1 AND (" DM_AKEY
				     ", ch.id) < ($2::bigint, $3::bigint) "
				     "ORDER BY " DM_AKEY " DESC, ch.id DESC LIMIT $4",
				     4, params);
	}
	if (!r)
		return;
	items = json_object_new_array();
	if (!items) {
		http_reply_error(req, TH_EINTERNAL, "out of memory", NULL);
		return;
	}
	n = db_res_rows(r);
	for (int i = 0; i < n && i < pg.limit; i++)
		json_object_array_add(items, item(r, i, 0));
	if (n > pg.limit) {
		int64_t keys[2] = {strtoll(db_res_get(r, pg.limit - 1, 1), NULL, 10),
				   strtoll(db_res_get(r, pg.limit - 1, 2), NULL, 10)};

		next = page_cursor(req->arena, 2, keys);
	}
	http_reply_json(req, 200, page_result(items, next));
}

/* POST /api/dms/:id/leave: a member of a group DM; 204.  A 1:1 cannot be
 * left (409 conflict): it is the pair's one conversation, and leaving it
 * would leave the other alone in it; blocking is how one stops it.  When the
 * last member leaves, the conversation and its messages are deleted. */
void dms_leave(struct http_req *req)
{
	struct rt_channel ch;
	int64_t chid;
	char c[24], u[24];
	struct db_res *r;
	struct json_object *ev;

	if (jh_id_or_404(req, http_param(req, "id"), &chid) < 0 ||
	    channel_access(req, chid, ROLE_NONE, &ch) < 0)
		return;
	if (!ch.cm.dm) {
		http_reply_error(req, TH_ENOTFOUND, "no such conversation", NULL);
		return;
	}
	{
		const char *params[] = {ids_text(c, chid)};

		r = db_exec_or_reply(req, DB_PRIMARY,
				     "SELECT pair_lo IS NULL FROM channels WHERE id = $1", 1,
				     params);
	}
	if (!r)
		return;
	if (db_res_rows(r) != 1) {
		http_reply_error(req, TH_ENOTFOUND, "no such conversation", NULL);
		return;
	}
	if (strcmp(db_res_get(r, 0, 0), "t") != 0) {
		http_reply_error(req, TH_ECONFLICT,
				 "a one-to-one conversation cannot be left (block the person "
				 "instead)",
				 NULL);
		return;
	}
	if (limits_take_or_reply(req, LIMIT_SETTING) < 0 || db_begin_or_reply(req) < 0)
		return;
	{
		const char *params[] = {c, ids_text(u, req->user_id)};

		r = db_exec_or_reply(req, DB_PRIMARY,
				     /* the channel's row first: two last members
				      * leaving at once must not both see the
				      * other still there (the DM would stay,
				      * with nobody in it) */
				     "WITH lk AS (SELECT id FROM channels WHERE id = $1 FOR "
				     "UPDATE), "
				     "gone AS (DELETE FROM dm_members WHERE channel_id = (SELECT "
				     "id "
				     "FROM lk) AND user_id = $2 RETURNING user_id), "
				     "unread AS (DELETE FROM channel_reads WHERE channel_id = $1 "
				     "AND user_id = $2) SELECT 1 FROM gone",
				     2, params);
	}
	if (!r || db_one_row_changed_or_404(req, r, "no such conversation") < 0)
		return;
	{
		/* the last one out: the conversation goes (nobody may read it) */
		const char *params[] = {c};

		r = db_exec_or_reply(req, DB_PRIMARY,
				     "DELETE FROM channels WHERE id = $1 AND NOT EXISTS "
				     "(SELECT 1 FROM dm_members WHERE channel_id = $1)",
				     1, params);
		if (!r)
			return;
	}
	ev = json_object_new_object();
	if (!ev) {
		http_reply_error(req, TH_EINTERNAL, "out of memory", NULL);
		return;
	}
	json_object_object_add(ev, "type", json_object_new_string("dm_left"));
	json_object_object_add(ev, "channel_id", json_object_new_int64(chid));
	json_object_object_add(ev, "user_id", json_object_new_int64(req->user_id));
	channel_event_inbox(&ch, ev); /* the members before: the leaver too */
	if (events_emit_json(req, ev) < 0 || db_commit_or_reply(req) < 0)
		return;
	log_info("audit: user %lld left DM %lld", (long long)req->user_id, (long long)chid);
	dm_mirror_gone(chid, req->user_id);
	dm_mirror(chid); /* the leaver's blocks no longer mute anyone there */
	http_reply_empty(req, 204);
}
