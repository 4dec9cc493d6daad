/* notifications: the caller's notifications (API.md v1.1 "Mentions and
 * notifications").
 *
 * The database makes them: triggers of db/migrations/0024_notifications.sql
 * create each one in the transaction of the action that caused it, once, and
 * queue it for user/<id>/inbox.  This file lists them and marks them read.
 * Every item is notification_json() of that migration, the same object the
 * inbox event carries, so a client may merge the two.
 *
 *   GET /api/notifications[?unread=true]   newest first, keyset on id
 *   GET /api/notifications?after=<id>      created after it, oldest first
 *                                          (gap fill after a reconnect)
 *   POST /api/notifications/read {ids} | {all: true}
 *
 * The remaining count is the unread ones as the statement's snapshot sees
 * them (before its own UPDATE), less what it marked.  Reads use the primary: a client that just saw a notification on its
 * inbox must find it with ?after=. */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "ids.h"
#include "jh.h"
#include "page.h"
#include "realtime.h"
#include "reply.h"
#include "userlimits.h"
#include "unreadcache.h"

/* ids in one POST /api/notifications/read */
#define NOTIFY_READ_MAX 100

#define NOTIFY_ROW "SELECT notification_json(n)::text, n.id FROM notifications n "
/* The caller's rows in the order of an index on (user_id, id): ordering by
 * user_id too lets the planner walk notifications_user_idx (or, unread
 * only, notifications_unread_idx, which a "NOT $x OR read_at IS NULL" would
 * rule out) from the cursor, rather than notifications_pkey backwards past
 * every other user's newer rows (10,000 of them after a fan-out: 2.3 ms a
 * page instead of 0.4, EXPLAIN (ANALYZE) on the bench's data). */
#define NOTIFY_ALL NOTIFY_ROW "WHERE n.user_id = $1 "
#define NOTIFY_UNREAD NOTIFY_ROW "WHERE n.user_id = $1 AND n.read_at IS NULL "
#define NOTIFY_UP "ORDER BY n.user_id, n.id LIMIT $3"
#define NOTIFY_DOWN "ORDER BY n.user_id DESC, n.id DESC LIMIT $3"

static struct json_object *notification_row(const struct db_res *r, int row, void *ctx)
{
	const char *s = db_res_get(r, row, 0);

	(void)ctx;
	/* PostgreSQL wrote it: valid JSON, parsed with the same bounded parser */
	return jh_parse(s, strlen(s));
}

void notifications_list(struct http_req *req)
{
	const char *after = http_query(req, "after"), *unread = http_query(req, "unread");
	int only_unread = unread && strcmp(unread, "true") == 0;
	char me[24], from[24];
	struct page pg;
	struct db_res *r;

	if (unread && !only_unread && strcmp(unread, "false") != 0) {
		http_reply_error(req, TH_EVALIDATION, "unread must be true or false", "unread");
		return;
	}
	ids_text(me, req->user_id);
	if (after) {
		long long start;

		if (cfg_parse_int(after, 0, INT64_MAX, &start) < 0) {
			http_reply_error(req, TH_EVALIDATION, "after must be a notification id",
					 "after");
			return;
		}
		if (page_parse_or_400(req, 1, 0, &pg) < 0)
			return;
		/* a cursor continues the same query past its last item */
		if (pg.has_cursor && pg.key[0] > start)
			start = pg.key[0];
		{
			const char *params[] = {me, ids_text(from, (int64_t)start), pg.limit_s};

			r = db_exec_or_reply(req, DB_PRIMARY,
					     only_unread ? NOTIFY_UNREAD "AND n.id > $2 " NOTIFY_UP
							 : NOTIFY_ALL "AND n.id > $2 " NOTIFY_UP,
					     3, params);
		}
	} else {
		struct unreadcache_fill fill = {0};
		char name[UNREADCACHE_NAME_MAX];

		if (page_parse_or_400(req, 1, INT64_MAX, &pg) < 0)
			return;
		/* the first page (no cursor) is what every badge and bell asks
		 * for: cached exactly (unreadcache.h), the later pages are not */
		if (!pg.has_cursor) {
			snprintf(name, sizeof(name), "n%lld:%s:%d", (long long)req->user_id,
				 pg.limit_s, only_unread);
			if (unreadcache_serve(req, name))
				return;
			unreadcache_begin(req, name, 0, &fill);
		}
		{
			const char *params[] = {me, pg.key_s[0], pg.limit_s};

			r = db_exec_or_reply(req, DB_PRIMARY,
					     only_unread ? NOTIFY_UNREAD
						     "AND n.id < $2 " NOTIFY_DOWN
							 : NOTIFY_ALL "AND n.id < $2 " NOTIFY_DOWN,
					     3, params);
		}
		if (!r)
			return;
		page_reply(req, &pg, r, 1, notification_row, NULL);
		unreadcache_end(req, &fill);
		return;
	}
	if (!r)
		return;
	page_reply(req, &pg, r, 1, notification_row, NULL);
}

/* The ids of {ids: [...]} as a PostgreSQL array literal, or NULL with 400
 * replied: 1..NOTIFY_READ_MAX positive integers. */
static char *ids_array_or_400(struct http_req *req, struct json_object *ids)
{
	size_t n = json_object_array_length(ids);
	int64_t id[NOTIFY_READ_MAX];
	char *out;

	if (n < 1 || n > NOTIFY_READ_MAX) {
		http_reply_error(req, TH_EVALIDATION, "ids must hold 1 to 100 notification ids",
				 "ids");
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		struct json_object *v = json_object_array_get_idx(ids, i);

		id[i] = json_object_is_type(v, json_type_int) ? json_object_get_int64(v) : 0;
		if (id[i] < 1) {
			http_reply_error(req, TH_EVALIDATION, "ids must be positive integers",
					 "ids");
			return NULL;
		}
	}
	out = arena_alloc(req->arena, IDS_ARRAY_SIZE(n));
	if (!out) {
		http_reply_error(req, TH_EINTERNAL, "out of memory", NULL);
		return NULL;
	}
	ids_array(out, IDS_ARRAY_SIZE(n), id, n);
	return out;
}

/* POST /api/notifications/read {ids: [..]} or {all: true}: 204.  Ids that
 * are not the caller's, or already read, change nothing.  When something
 * changed, {"type": "notifications_read", "ids" | "all", "unread": N} goes
 * to the caller's inbox, so every device clears the same badges. */
void notifications_read(struct http_req *req)
{
	struct json_object *ids = NULL, *ev;
	bool all = false, has_all = false;
	char me[24], *arr = NULL;
	struct db_res *r;

	if (jh_bool_or_400(req, req->json, "all", false, &has_all, &all) < 0)
		return;
	if (json_object_object_get_ex(req->json, "ids", &ids) && ids &&
	    !json_object_is_type(ids, json_type_array)) {
		http_reply_error(req, TH_EVALIDATION, "ids must be an array of ids", "ids");
		return;
	}
	if ((ids != NULL) == (has_all && all)) {
		http_reply_error(req, TH_EVALIDATION, "give ids, or all: true",
				 ids ? "all" : "ids");
		return;
	}
	if (ids && !(arr = ids_array_or_400(req, ids)))
		return;
	if (limits_take_or_reply(req, LIMIT_READ) < 0 || db_begin_or_reply(req) < 0)
		return;
	{
		const char *params[] = {ids_text(me, req->user_id), arr};

		r = db_exec_or_reply(req, DB_PRIMARY,
				     "WITH done AS (UPDATE notifications SET read_at = now() "
				     "WHERE user_id = $1 AND read_at IS NULL "
				     "AND ($2::bigint[] IS NULL OR id = ANY ($2::bigint[])) "
				     "RETURNING id) "
				     "SELECT (SELECT count(*) FROM done), "
				     "(SELECT coalesce(json_agg(id ORDER BY id), '[]')::text FROM "
				     "done), "
				     "(SELECT count(*) FROM notifications WHERE user_id = $1 AND "
				     "read_at IS NULL) - (SELECT count(*) FROM done)",
				     2, params);
	}
	if (!r)
		return;
	if (strcmp(db_res_get(r, 0, 0), "0") != 0) {
		const char *done = db_res_get(r, 0, 1);

		ev = json_object_new_object();
		if (!ev) {
			http_reply_error(req, TH_EINTERNAL, "out of memory", NULL);
			return;
		}
		json_object_object_add(ev, "type", json_object_new_string("notifications_read"));
		json_object_object_add(ev, "user_id", json_object_new_int64(req->user_id));
		if (arr)
			json_object_object_add(ev, "ids", jh_parse(done, strlen(done)));
		else
			json_object_object_add(ev, "all", json_object_new_boolean(1));
		json_object_object_add(ev, "unread", user_json_int(db_res_get(r, 0, 2)));
		if (events_emit_json(req, ev) < 0)
			return;
	}
	if (db_commit_or_reply(req) < 0)
		return;
	http_reply_empty(req, 204);
}
