/* reads: read markers and unread counts (API.md v1.1 "Read markers and
 * unread counts").
 *
 * Counts come from seq, never from counting messages: a channel's last_seq
 * and the caller's read_seq (channel_reads, db/migrations/0018_dms_reads.sql)
 * give unread = last_seq - read_seq, which is exactly the stored messages
 * after the marker that others sent, because a sender's marker moves to
 * each message they send, in the transaction that numbers it
 * (message_store()), and never back.  GET /api/me/unread is one query: the
 * caller's channels (communities they are a member of, their DMs) joined to
 * their markers, keeping those with last_seq > read_seq.
 *
 * Every move of a marker is announced on user/<id>/inbox ({"type": "unread",
 * ...}, queued in the transaction, published by the bridge after the commit),
 * so the caller's other devices agree. */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "jh.h"
#include "log.h"
#include "realtime.h"
#include "reply.h"
#include "userlimits.h"
#include "unreadcache.h"

/* channels in one answer of GET /api/me/unread; more: "truncated": true */
#define UNREAD_MAX 2000
#define UNREAD_MAX_S "2000"

/* {"type": "unread", user_id, channel_id, read_seq, unread, mentions}, or
 * (event 0) the same without type and user_id: the route's answer. */
static struct json_object *counts(int event, int64_t uid, int64_t chid, int64_t read_seq,
				  int64_t unread, int64_t mentions)
{
	struct json_object *o = json_object_new_object();

	if (!o)
		return NULL;
	if (event) {
		json_object_object_add(o, "type", json_object_new_string("unread"));
		json_object_object_add(o, "user_id", json_object_new_int64(uid));
	}
	json_object_object_add(o, "channel_id", json_object_new_int64(chid));
	json_object_object_add(o, "read_seq", json_object_new_int64(read_seq));
	json_object_object_add(o, "unread", json_object_new_int64(unread));
	json_object_object_add(o, "mentions", json_object_new_int64(mentions));
	return o;
}

/* PUT /api/channels/:id/read {seq}: a reader of the channel.  The marker
 * moves forward only (a lower seq changes nothing); seq beyond the
 * channel's last seq, or negative: 400. */
void reads_put(struct http_req *req)
{
	struct rt_channel ch;
	int64_t chid, seq, last, old, now, mentions;
	char me[24], c[24], s[24];
	struct db_res *r;
	struct json_object *ev, *out;

	if (jh_id_or_404(req, http_param(req, "id"), &chid) < 0 ||
	    channel_access(req, chid, ROLE_NONE, &ch) < 0 ||
	    jh_int_or_400(req, req->json, "seq", 0, INT64_MAX, true, NULL, &seq) < 0)
		return;
	if (limits_take_or_reply(req, LIMIT_READ) < 0 || db_begin_or_reply(req) < 0)
		return;
	{
		const char *params[] = {ids_text(me, req->user_id), ids_text(c, chid),
					ids_text(s, seq)};

		/* last_seq only grows: a seq at or below it now stays valid */
		r = db_exec_or_reply(req, DB_PRIMARY,
				     "WITH ch AS (SELECT last_seq FROM channels WHERE id = $2), "
				     "old AS (SELECT read_seq FROM channel_reads WHERE user_id = "
				     "$1 AND "
				     "channel_id = $2), "
				     "up AS (INSERT INTO channel_reads (user_id, channel_id, "
				     "read_seq) "
				     "SELECT $1, $2, $3 FROM ch WHERE $3::bigint <= ch.last_seq "
				     "ON CONFLICT (user_id, channel_id) DO UPDATE SET read_seq = "
				     "EXCLUDED.read_seq WHERE channel_reads.read_seq < "
				     "EXCLUDED.read_seq "
				     "RETURNING read_seq) "
				     "SELECT ch.last_seq, coalesce((SELECT read_seq FROM old), 0), "
				     "coalesce((SELECT read_seq FROM up), (SELECT read_seq FROM "
				     "old), 0), channel_mentions($1, $2, coalesce((SELECT "
				     "read_seq FROM up), (SELECT read_seq FROM old), 0)) FROM ch",
				     3, params);
	}
	if (!r)
		return;
	if (db_res_rows(r) != 1) { /* deleted since channel_access() */
		db_rollback();
		http_reply_error(req, TH_ENOTFOUND, "no such channel", NULL);
		return;
	}
	last = strtoll(db_res_get(r, 0, 0), NULL, 10);
	old = strtoll(db_res_get(r, 0, 1), NULL, 10);
	now = strtoll(db_res_get(r, 0, 2), NULL, 10);
	mentions = strtoll(db_res_get(r, 0, 3), NULL, 10);
	if (seq > last) {
		db_rollback();
		http_reply_error(req, TH_EVALIDATION,
				 "seq is beyond the channel's last message (its last_seq)", "seq");
		return;
	}
	/* request-owned (jh_own): every exit below leaves them to the arena */
	out = jh_own(req, counts(0, req->user_id, chid, now, last - now, mentions));
	if (!out) {
		http_reply_error(req, TH_EINTERNAL, "out of memory", NULL);
		return;
	}
	if (now > old) {
		ev = jh_own(req, counts(1, req->user_id, chid, now, last - now, mentions));
		if (!ev) {
			http_reply_error(req, TH_EINTERNAL, "out of memory", NULL);
			return;
		}
		if (events_emit_json(req, json_object_get(ev)) < 0)
			return;
	}
	if (db_commit_or_reply(req) < 0)
		return;
	http_reply_json(req, 200, json_object_get(out));
}

/* GET /api/me/unread from PostgreSQL: {channels: [{channel_id,
 * community_id, last_seq, read_seq, unread, mentions}], notifications,
 * truncated} — the caller's channels with unread messages, by channel id, in
 * one query. */
static void unread_db(struct http_req *req)
{
	char me[24];
	struct db_res *r;
	struct json_object *o, *list;
	int n;

	{
		const char *params[] = {ids_text(me, req->user_id)};

		/* unread_channels(): db/migrations/0018_dms_reads.sql, 0038;
		 * one row when no channel is unread (its channel columns null);
		 * mentions: channel_mentions() of 0038 written out (a scalar
		 * function with a FROM is not inlined): an index-only count on
		 * notifications_mentions_idx per channel.  A join of
		 * all the caller's mentions to the channels grouped once, as
		 * before, became a nested loop of 1,000 x 1,000 rows in the
		 * generic plan of the prepared statement (40 ms instead of 5,
		 * EXPLAIN (ANALYZE) on the bench's data); the subquery has no
		 * plan that bad.  notifications: counted on
		 * notifications_unread_idx (at most 10,000 kept a user:
		 * migration 0024; a kept count deadlocked under concurrent
		 * fan-outs, 0028) */
		r = db_exec_or_reply(req, DB_PRIMARY,
				     "SELECT u.channel_id, u.community_id, u.last_seq, u.read_seq, "
				     "(SELECT count(*) FROM notifications n WHERE n.user_id = $1 "
				     "AND n.channel_id = u.channel_id AND n.type = 'mention' AND "
				     "n.read_at IS NULL AND n.message_seq > u.read_seq), "
				     "(SELECT count(*) FROM notifications WHERE user_id = $1 AND "
				     "read_at IS NULL) "
				     "FROM (SELECT 1) one LEFT JOIN LATERAL (SELECT * FROM "
				     "unread_channels($1) ORDER BY channel_id LIMIT " UNREAD_MAX_S
				     " + 1) u ON true "
				     "ORDER BY u.channel_id",
				     1, params);
	}
	if (!r)
		return;
	o = jh_object(req);
	list = jh_array(req);
	if (!o || !list || json_object_object_add(o, "channels", json_object_get(list)) < 0) {
		http_reply_error(req, TH_EINTERNAL, "out of memory", NULL);
		return;
	}
	n = db_res_isnull(r, 0, 0) ? 0 : db_res_rows(r);
	for (int i = 0; i < n && i < UNREAD_MAX; i++) {
		int64_t last = strtoll(db_res_get(r, i, 2), NULL, 10);
		int64_t rs = strtoll(db_res_get(r, i, 3), NULL, 10);
		struct json_object *e = counts(0, 0, strtoll(db_res_get(r, i, 0), NULL, 10), rs,
					       last - rs, strtoll(db_res_get(r, i, 4), NULL, 10));

		if (!e)
			continue;
		json_object_object_add(e, "community_id",
				       db_res_isnull(r, i, 1) ? NULL
							      : user_json_int(db_res_get(r, i, 1)));
		json_object_object_add(e, "last_seq", json_object_new_int64(last));
		json_object_array_add(list, e);
	}
	json_object_object_add(o, "notifications", user_json_int(db_res_get(r, 0, 5)));
	json_object_object_add(o, "truncated", json_object_new_boolean(n > UNREAD_MAX));
	http_reply_json(req, 200, json_object_get(o));
}

/* GET /api/me/unread: the cached answer while it is current
 * (unreadcache.h), else PostgreSQL's, stored for the next read. */
void reads_unread(struct http_req *req)
{
	struct unreadcache_fill fill;
	char name[UNREADCACHE_NAME_MAX];

	snprintf(name, sizeof(name), "u%lld", (long long)req->user_id);
	if (unreadcache_serve(req, name))
		return;
	unreadcache_begin(req, name, 1, &fill);
	unread_db(req);
	unreadcache_end(req, &fill);
}
