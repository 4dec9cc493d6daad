/* messages: channel history (newest first, or after a given message in
 * order), REST posting, edit, delete.
 *
 * Storage (db/migrations/0004_messages.sql): a message's id is a UUID chosen
 * by the client (idempotent), seq numbers a channel's stored messages 1, 2, 3
 * ... in commit order and is assigned under the channel row's lock
 * (channels.last_seq) by message_store() (db/migrations/0016_message_store.sql),
 * which the bridge calls for messages published over MQTT too: both writers
 * share one sequence and one rule.  Deleted messages keep their seq:
 * history shows them with body "" and deleted_at set (a client that holds the
 * message learns it is gone; seq stays gap-free).
 *
 * History walks messages_seq_key (channel_id, seq) in either direction:
 * newest first keyset on seq (?cursor=), or seq > the seq of ?after= oldest
 * first.  Every read is on the primary: a client that just saw a message over
 * MQTT must find it by id in ?after=.
 *
 * Events (docs/events.md): chat_message (the bridge publishes it to
 * chat/<channel>/<sender>), message_edited, message_deleted. */
#include <json-c/json.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "events.h"
#include "jh.h"
#include "userlimits.h"
#include "log.h"
#include "page.h"
#include "realtime.h"
#include "reply.h"

#define MSG_BODY_MAX 4000

/* A message as routes that act on one see it. */
static struct json_object *nullable(const struct db_res *r, int row, int col)
{
	return db_res_isnull(r, row, col) ? NULL : json_object_new_string(db_res_get(r, row, col));
}

/* {id, channel_id, seq, sender, body, reply_to, created_at, edited_at, deleted_at} */
static struct json_object *message_json(const struct db_res *r, int row)
{
	struct json_object *o = json_object_new_object();

	if (!o)
		return NULL;
	json_object_object_add(o, "id", json_object_new_string(db_res_get(r, row, MSG_C_ID)));
	json_object_object_add(o, "channel_id", user_json_int(db_res_get(r, row, MSG_C_CHANNEL)));
	json_object_object_add(o, "seq", user_json_int(db_res_get(r, row, MSG_C_SEQ)));
	json_object_object_add(o, "sender", user_json(r, row, MSG_C_USER));
	json_object_object_add(o, "body", json_object_new_string(db_res_get(r, row, MSG_C_BODY)));
	json_object_object_add(o, "reply_to", nullable(r, row, MSG_C_REPLY));
	json_object_object_add(o, "created_at",
			       json_object_new_string(db_res_get(r, row, MSG_C_CREATED)));
	json_object_object_add(o, "edited_at", nullable(r, row, MSG_C_EDITED));
	json_object_object_add(o, "deleted_at", nullable(r, row, MSG_C_DELETED));
	return o;
}

struct json_object *message_row(const struct db_res *r, int row, void *ctx)
{
	(void)ctx;
	return message_json(r, row);
}

/* Replies status with the stored message id (primary). */
static void message_reply(struct http_req *req, int status, const char *id)
{
	const char *params[] = {id};
	struct db_res *r;

	r = db_exec_or_reply(req, DB_PRIMARY, "SELECT " MSG_COLS MSG_FROM "WHERE m.id = $1", 1,
			     params);
	if (!r)
		return;
	if (db_res_rows(r) != 1) {
		http_reply_error(req, TH_ENOTFOUND, "no such message", NULL);
		return;
	}
	http_reply_json(req, status, message_json(r, 0));
}

/* Queues ev (consumed) in the current transaction; lib/events handles a
 * long chat message too large for NOTIFY. */
/* ev: the request's (event_new); events_emit_json consumes a reference */
static int emit(struct http_req *req, struct json_object *ev)
{
	return events_emit_json(req, json_object_get(ev));
}

/* {type, community_id, channel_id, ...}, owned by the request */
static struct json_object *event_new(struct http_req *req, const char *type,
				     const struct rt_channel *ch)
{
	struct json_object *ev = jh_object(req);

	if (!ev)
		return NULL;
	json_object_object_add(ev, "type", json_object_new_string(type));
	/* a DM has no community: its events go to its members' inboxes */
	json_object_object_add(ev, "community_id",
			       ch->cm.dm ? NULL : json_object_new_int64(ch->cm.id));
	json_object_object_add(ev, "channel_id", json_object_new_int64(ch->id));
	channel_event_inbox(ch, ev);
	return ev;
}

/* An optional UUID field: absent or null -> *out NULL.  -1 with 400 replied
 * when present and not a UUID string. */
static int uuid_field_or_400(struct http_req *req, const char *field, const char **out)
{
	struct json_object *v;
	char msg[64];

	*out = NULL;
	if (!json_object_object_get_ex(req->json, field, &v) || !v)
		return 0;
	if (!json_object_is_type(v, json_type_string) ||
	    !ids_uuid_ok(json_object_get_string(v), (size_t)json_object_get_string_len(v))) {
		snprintf(msg, sizeof(msg), "%s must be a UUID string", field);
		http_reply_error(req, TH_EVALIDATION, msg, field);
		return -1;
	}
	*out = json_object_get_string(v);
	return 0;
}

/* A random (version 4) UUID, lower case, into out. */
static void uuid_new(char out[IDS_UUID_LEN + 1])
{
	unsigned char b[16];

	randombytes_buf(b, sizeof(b));
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	snprintf(out, IDS_UUID_LEN + 1,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
		 b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
		 b[15]);
}

int message_access(struct http_req *req, struct msg_ref *m, struct rt_channel *ch)
{
	const char *id = http_param(req, "id");
	const char *params[1];
	struct db_res *r;
	int64_t chid;

	memset(m, 0, sizeof(*m));
	if (!id || !ids_uuid_ok(id, strlen(id))) {
		http_reply_error(req, TH_ENOTFOUND, "no such message", NULL);
		return -1;
	}
	params[0] = id;
	r = db_exec_or_reply(req, DB_PRIMARY,
			     "SELECT id, channel_id, sender_id, seq, deleted_at IS NOT NULL "
			     "FROM messages WHERE id = $1",
			     1, params);
	if (!r)
		return -1;
	if (db_res_rows(r) != 1) {
		http_reply_error(req, TH_ENOTFOUND, "no such message", NULL);
		return -1;
	}
	snprintf(m->id, sizeof(m->id), "%s", db_res_get(r, 0, 0));
	chid = strtoll(db_res_get(r, 0, 1), NULL, 10);
	m->sender_id = strtoll(db_res_get(r, 0, 2), NULL, 10);
	m->seq = strtoll(db_res_get(r, 0, 3), NULL, 10);
	m->deleted = strcmp(db_res_get(r, 0, 4), "t") == 0;
	if (channel_load(req, chid, ch) < 0)
		return -1;
	return channel_check(req, ch, ROLE_NONE, "message");
}

/* ---- handlers ---- */

/* GET /api/channels/:id/messages[?cursor=][&limit=]           newest first
 * GET /api/channels/:id/messages?after=<uuid>[&cursor=][&limit=] oldest first */
void messages_list(struct http_req *req)
{
	struct rt_channel ch;
	struct page pg;
	const char *after = http_query(req, "after");
	char chs[24], from[24];
	struct db_res *r;
	int64_t chid;

	if (jh_id_or_404(req, http_param(req, "id"), &chid) < 0 ||
	    channel_access(req, chid, ROLE_NONE, &ch) < 0)
		return;
	ids_text(chs, ch.id);
	if (after) {
		int64_t start;

		if (!ids_uuid_ok(after, strlen(after))) {
			http_reply_error(req, TH_EVALIDATION, "after must be a message id (UUID)",
					 "after");
			return;
		}
		if (page_parse_or_400(req, 1, 0, &pg) < 0)
			return;
		{
			const char *params[] = {after, chs};

			r = db_exec_or_reply(req, DB_PRIMARY,
					     "SELECT seq FROM messages WHERE id = $1 AND "
					     "channel_id = $2",
					     2, params);
		}
		if (!r)
			return;
		if (db_res_rows(r) != 1) {
			http_reply_error(req, TH_ENOTFOUND,
					 "no message with that id in this channel", NULL);
			return;
		}
		start = strtoll(db_res_get(r, 0, 0), NULL, 10);
		/* a cursor continues the same query past its last item */
		if (pg.has_cursor && pg.key[0] > start)
			start = pg.key[0];
		{
			const char *params[] = {chs, ids_text(from, start), pg.limit_s};

			r = db_exec_or_reply(req, DB_PRIMARY,
					     "SELECT " MSG_COLS MSG_FROM
					     "WHERE m.channel_id = $1 AND m.seq > $2 ORDER BY "
					     "m.seq LIMIT $3",
					     3, params);
		}
	} else {
		if (page_parse_or_400(req, 1, INT64_MAX, &pg) < 0)
			return;
		{
			const char *params[] = {chs, pg.key_s[0], pg.limit_s};

			r = db_exec_or_reply(req, DB_PRIMARY,
					     "SELECT " MSG_COLS MSG_FROM
					     "WHERE m.channel_id = $1 AND m.seq < $2 "
					     "ORDER BY m.seq DESC LIMIT $3",
					     3, params);
		}
	}
	if (!r)
		return;
	page_reply(req, &pg, r, MSG_C_SEQ, message_row, NULL);
}

/* GET /api/messages/:id */
void messages_get(struct http_req *req)
{
	struct rt_channel ch;
	struct msg_ref m;

	if (message_access(req, &m, &ch) < 0)
		return;
	message_reply(req, 200, m.id);
}

/* POST /api/channels/:id/messages {id?, body, reply_to?}
 * 201 with the stored message; 200 with the stored one when the id is
 * already stored for this channel and sender (a replay: nothing changes,
 * no event); 409 when the id belongs to another channel or sender. */
void messages_create(struct http_req *req)
{
	struct rt_channel ch;
	struct chatrules rules;
	const char *given, *body, *reply_to;
	char id[IDS_UUID_LEN + 1], chs[24], uid[24];
	struct db_res *r;
	struct json_object *ev, *msg;
	int64_t chid, seq;
	int st;

	if (jh_id_or_404(req, http_param(req, "id"), &chid) < 0 ||
	    channel_access(req, chid, ROLE_MEMBER, &ch) < 0)
		return;
	if (uuid_field_or_400(req, "id", &given) < 0 ||
	    jh_string_or_400(req, req->json, "body", 1, MSG_BODY_MAX, JH_REQUIRED | JH_MULTILINE,
			     &body) < 0 ||
	    uuid_field_or_400(req, "reply_to", &reply_to) < 0)
		return;
	if (given) {
		ids_uuid_lower(id, given); /* as PostgreSQL prints it */
	} else {
		uuid_new(id);
	}
	/* the community's content limits (400), then the per-user rate, then
	 * slow mode (429; keyed by the id: a retry of this message passes) */
	if (chatrules_load(req, &ch, &rules) < 0 ||
	    chatrules_body_or_reply(req, &rules, body) < 0 ||
	    limits_take_or_reply(req, LIMIT_MESSAGE) < 0 ||
	    chatrules_slow_or_reply(req, &rules, ch.id, id) < 0)
		return;
	ids_text(chs, ch.id);
	ids_text(uid, req->user_id);
	if (reply_to) {
		/* a message's channel never changes and its row stays when it is
		 * deleted, so this holds at the insert below */
		const char *params[] = {reply_to, chs};

		r = db_exec_or_reply(req, DB_PRIMARY,
				     "SELECT 1 FROM messages WHERE id = $1 AND channel_id = $2", 2,
				     params);
		if (!r)
			return;
		st = db_res_rows(r);
		if (st != 1) {
			http_reply_error(req, TH_EVALIDATION,
					 "reply_to must be a message of this channel", "reply_to");
			return;
		}
	}
	if (db_begin_or_reply(req) < 0)
		return;
	{
		/* the bridge's path for a batch, here with one message
		 * (db/migrations/0016_message_store.sql): one rule for seq */
		const char *params[] = {id, chs, uid, body, reply_to};

		r = db_exec_or_reply(req, DB_PRIMARY,
				     "SELECT status, seq FROM message_store(ARRAY[$1::uuid], "
				     "ARRAY[$2::bigint], ARRAY[$3::bigint], ARRAY[$4::text], "
				     "ARRAY[$5::uuid])",
				     5, params);
	}
	if (!r)
		return;
	st = db_res_rows(r) == 1 ? atoi(db_res_get(r, 0, 0)) : -1;
	seq = st == 1 ? strtoll(db_res_get(r, 0, 1), NULL, 10) : 0;
	if (st != 1) {
		db_rollback();
		if (st == 0) /* a replay: the id is this sender's in this channel */
			message_reply(req, 200, id);
		else if (st == 2)
			http_reply_error(req, TH_ECONFLICT, "id is taken by another message", "id");
		else /* 3: the channel (or the sender) went away meanwhile */
			http_reply_error(req, TH_ENOTFOUND, "no such channel", NULL);
		return;
	}
	ev = event_new(req, "chat_message", &ch);
	msg = jh_object(req);
	if (!ev || !msg) {
		http_reply_error(req, TH_EINTERNAL, "out of memory", NULL);
		return;
	}
	json_object_object_add(ev, "sender_id", json_object_new_int64(req->user_id));
	json_object_object_add(msg, "id", json_object_new_string(id));
	json_object_object_add(msg, "body", json_object_new_string(body));
	json_object_object_add(msg, "reply_to", reply_to ? json_object_new_string(reply_to) : NULL);
	json_object_object_add(ev, "message", json_object_get(msg));
	if (emit(req, ev) < 0 || db_commit_or_reply(req) < 0)
		return;
	log_info("audit: user %lld posted message %s (seq %lld) in channel %lld",
		 (long long)req->user_id, id, (long long)seq, (long long)ch.id);
	message_reply(req, 201, id);
}

/* PATCH /api/messages/:id {body}: the sender only. */
void messages_patch(struct http_req *req)
{
	struct chatrules rules;
	struct rt_channel ch;
	struct msg_ref m;
	const char *body;
	struct db_res *r;
	struct json_object *ev, *msg;

	if (message_access(req, &m, &ch) < 0)
		return;
	if (m.deleted) {
		http_reply_error(req, TH_ENOTFOUND, "the message is deleted", NULL);
		return;
	}
	if (m.sender_id != req->user_id) {
		http_reply_error(req, TH_EFORBIDDEN, "only the sender may edit a message", NULL);
		return;
	}
	if (ch.cm.banned) {
		http_reply_error(req, TH_EBANNED, "you are banned from this community", NULL);
		return;
	}
	if (ch.cm.muted) { /* a DM where another member blocked the sender */
		http_reply_error(req, TH_EFORBIDDEN, "you may not write in this conversation",
				 NULL);
		return;
	}
	if (jh_string_or_400(req, req->json, "body", 1, MSG_BODY_MAX, JH_REQUIRED | JH_MULTILINE,
			     &body) < 0)
		return;
	/* an edit meets the community's content limits as a new message does
	 * (slow mode is about sending, not editing) */
	if (chatrules_load(req, &ch, &rules) < 0 ||
	    chatrules_body_or_reply(req, &rules, body) < 0 ||
	    limits_take_or_reply(req, LIMIT_EDIT) < 0 || db_begin_or_reply(req) < 0)
		return;
	{
		const char *params[] = {m.id, body};

		r = db_exec_or_reply(req, DB_PRIMARY,
				     "UPDATE messages SET body = $2, edited_at = now() "
				     "WHERE id = $1 AND deleted_at IS NULL "
				     "RETURNING reply_to, " TH_TIME_SQL("edited_at"),
				     2, params);
	}
	if (!r)
		return;
	if (db_res_rows(r) != 1) { /* deleted since message_access() */
		http_reply_error(req, TH_ENOTFOUND, "the message is deleted", NULL);
		return;
	}
	ev = event_new(req, "message_edited", &ch);
	msg = jh_object(req);
	if (!ev || !msg) {
		http_reply_error(req, TH_EINTERNAL, "out of memory", NULL);
		return;
	}
	json_object_object_add(ev, "sender_id", json_object_new_int64(m.sender_id));
	json_object_object_add(msg, "id", json_object_new_string(m.id));
	json_object_object_add(msg, "seq", json_object_new_int64(m.seq));
	json_object_object_add(msg, "body", json_object_new_string(body));
	json_object_object_add(msg, "reply_to", nullable(r, 0, 0));
	json_object_object_add(msg, "edited_at", json_object_new_string(db_res_get(r, 0, 1)));
	json_object_object_add(ev, "message", json_object_get(msg));
	if (emit(req, ev) < 0 || db_commit_or_reply(req) < 0)
		return;
	log_info("audit: user %lld edited message %s", (long long)req->user_id, m.id);
	message_reply(req, 200, m.id);
}

/* DELETE /api/messages/:id: the sender, or a moderator+ of the community.
 * The row stays (its seq too) with body "" and deleted_at set. */
void messages_delete(struct http_req *req)
{
	struct rt_channel ch;
	struct msg_ref m;
	struct db_res *r;
	struct json_object *ev;

	if (message_access(req, &m, &ch) < 0)
		return;
	if (m.sender_id != req->user_id && (ch.cm.banned || ch.cm.my_role < ROLE_MODERATOR)) {
		http_reply_error(req, ch.cm.banned ? TH_EBANNED : TH_EFORBIDDEN,
				 ch.cm.banned
					 ? "you are banned from this community"
					 : "only the sender or a moderator may delete a message",
				 NULL);
		return;
	}
	if (m.deleted) {
		http_reply_error(req, TH_ENOTFOUND, "the message is deleted", NULL);
		return;
	}
	if (db_begin_or_reply(req) < 0)
		return;
	{
		const char *params[] = {m.id};

		r = db_exec_or_reply(req, DB_PRIMARY,
				     "UPDATE messages SET body = '', deleted_at = now() "
				     "WHERE id = $1 AND deleted_at IS NULL",
				     1, params);
	}
	if (!r)
		return;
	if (db_one_row_changed_or_404(req, r, "the message is deleted") < 0)
		return;
	ev = event_new(req, "message_deleted", &ch);
	if (!ev) {
		http_reply_error(req, TH_EINTERNAL, "out of memory", NULL);
		return;
	}
	json_object_object_add(ev, "message_id", json_object_new_string(m.id));
	json_object_object_add(ev, "seq", json_object_new_int64(m.seq));
	/* an erased sender's message (migration 0032) has none: null */
	json_object_object_add(ev, "sender_id",
			       m.sender_id ? json_object_new_int64(m.sender_id) : NULL);
	json_object_object_add(ev, "deleted_by", json_object_new_int64(req->user_id));
	if (emit(req, ev) < 0 || db_commit_or_reply(req) < 0)
		return;
	log_info("audit: user %lld deleted message %s of user %lld", (long long)req->user_id, m.id,
		 (long long)m.sender_id);
	http_reply_empty(req, 204);
}
