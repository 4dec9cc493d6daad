/* reports: reports of posts, comments, messages and users, the mod queue
 * and their resolution (API.md v1.1 "Moderation").
 *
 * Who may report: anyone who may see the target, by the one access policy
 * (lib/policy.c on community_access() / channel_access()); a target the
 * reporter cannot see is answered as one that does not exist (404).  One
 * open report per reporter and target (409), at most TH_RL_REPORT_MAX (20)
 * an hour per user (429).
 *
 * Which queue: the target's community.  Reports of users, and of messages
 * in DMs, have no community: they go to the site admins' queue
 * (GET /api/admin/reports, which lists every report).
 *
 * Resolution (moderator+ of the queue's community, or a site admin for the
 * site queue; another community's moderator gets 404 for a private
 * community, 403 otherwise) is one transaction: the action (dismiss;
 * remove the post, comment or message; ban its author from the community;
 * warn its author), the report and every other open report of the same
 * target resolved (an erased account's reports, whose target is gone, one
 * by one), and what the database's triggers add in it (0033): the modlog
 * entries of the action and of the resolution, the `report_resolved`
 * notification to each reporter and, for warn, a `warning` notification to
 * the author.  Banning
 * a user of the site queue is a suspension (POST
 * /api/admin/users/:id/suspend): 400 here. */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "community.h"
#include "jh.h"
#include "log.h"
#include "page.h"
#include "reply.h"
#include "userlimits.h"

#define NOTE_MAX 1000

enum target { T_POST, T_COMMENT, T_MESSAGE, T_USER, T_COUNT };

/* For each target type: its name, and the statement that finds it for
 * reporter $1 with id $2: the community (null: none), the author, then the
 * policy columns (message: those of channel_access()). */
static const struct {
	const char *name;
	const char *sql;
} targets[T_COUNT] = {
	[T_POST] = {"post", "SELECT p.community_id, p.author_id, " POLICY_COLS " FROM posts p "
			    "CROSS JOIN LATERAL community_access($1, p.community_id) a "
			    "WHERE p.id = $2::bigint"},
	[T_COMMENT] = {"comment", "SELECT p.community_id, c.author_id, " POLICY_COLS
				  " FROM comments c JOIN posts p ON p.id = c.post_id "
				  "CROSS JOIN LATERAL community_access($1, p.community_id) a "
				  "WHERE c.id = $2::bigint"},
	[T_MESSAGE] = {"message", "SELECT a.community_id, m.sender_id, " POLICY_CHANNEL_COLS
				  " FROM messages m "
				  "CROSS JOIN LATERAL channel_access($1, m.channel_id) a "
				  "WHERE m.id = $2::uuid AND m.deleted_at IS NULL"},
	[T_USER] = {"user", "SELECT NULL, u.id FROM users u "
			    "WHERE u.id = $2::bigint AND $1::bigint IS NOT NULL"},
};

static const char *const reasons[] = {"spam", "harassment", "illegal", "other"};
static const char *const actions[] = {"dismiss", "remove", "ban", "warn"};
enum action { A_DISMISS, A_REMOVE, A_BAN, A_WARN };

/* The index of s in names[0 .. n), or -1. */
static int name_index(const char *s, const char *const *names, int n)
{
	for (int i = 0; s && i < n; i++)
		if (strcmp(s, names[i]) == 0)
			return i;
	return -1;
}

static int target_index(const char *s)
{
	for (int i = 0; s && i < T_COUNT; i++)
		if (strcmp(s, targets[i].name) == 0)
			return i;
	return -1;
}

/* Column 1 is the report's JSON (report_json()). */
static struct json_object *report_row(const struct db_res *r, int row, void *ctx)
{
	const char *s = db_res_get(r, row, 1);

	(void)ctx;
	return jh_parse(s, strlen(s));
}

/* Replies status with report id as report_json() makes it. */
static void report_reply(struct http_req *req, int status, const char *id)
{
	const char *params[] = {id};
	struct db_res *r;
	struct json_object *o;

	r = db_exec_or_reply(req, DB_PRIMARY,
			     "SELECT r.id, report_json(r)::text FROM reports r WHERE r.id = $1", 1,
			     params);
	if (!r)
		return;
	if (db_res_rows(r) != 1) {
		http_reply_error(req, TH_ENOTFOUND, "no such report", NULL);
		return;
	}
	o = report_row(r, 0, NULL);
	if (!o) {
		http_reply_error(req, TH_EINTERNAL, "out of memory", NULL);
		return;
	}
	http_reply_json(req, status, o);
}

/* The target's id from {target: {type, id}} as text into out (a decimal id
 * or a UUID in its lower case form); -1 with 400 replied when malformed. */
static int target_id_or_400(struct http_req *req, struct json_object *t, enum target kind,
			    char out[64])
{
	if (kind == T_MESSAGE) {
		const char *s;

		if (jh_string_or_400(req, t, "id", 36, 36, JH_REQUIRED, &s) < 0)
			return -1;
		if (!ids_uuid_ok(s, strlen(s))) {
			http_reply_error(req, TH_EVALIDATION, "target.id is not a message id",
					 "target.id");
			return -1;
		}
		/* one spelling per id: the one-open-report index and the
		 * resolution of every report of a target compare text (0044) */
		ids_uuid_lower(out, s);
	} else {
		int64_t id;

		if (jh_int_or_400(req, t, "id", 1, INT64_MAX - 1, true, NULL, &id) < 0)
			return -1;
		ids_text(out, id);
	}
	return 0;
}

/* POST /api/reports {target: {type, id}, reason, note?} */
void reports_create(struct http_req *req)
{
	struct json_object *t;
	const char *type, *reason, *note;
	char id[64], u[24], cid[24], author[24];
	struct community cm;
	struct db_res *r;
	int kind;

	if (!json_object_object_get_ex(req->json, "target", &t) ||
	    !json_object_is_type(t, json_type_object)) {
		http_reply_error(req, TH_EVALIDATION, "target must be {type, id}", "target");
		return;
	}
	if (jh_string_or_400(req, t, "type", 1, 16, JH_REQUIRED, &type) < 0 ||
	    jh_string_or_400(req, req->json, "reason", 1, 16, JH_REQUIRED, &reason) < 0 ||
	    jh_string_or_400(req, req->json, "note", 0, NOTE_MAX, JH_MULTILINE, &note) < 0)
		return;
	kind = target_index(type);
	if (kind < 0) {
		http_reply_error(req, TH_EVALIDATION,
				 "target.type must be post, comment, message or user",
				 "target.type");
		return;
	}
	if (name_index(reason, reasons, 4) < 0) {
		http_reply_error(req, TH_EVALIDATION,
				 "reason must be spam, harassment, illegal or other", "reason");
		return;
	}
	if (target_id_or_400(req, t, (enum target)kind, id) < 0)
		return;
	{
		const char *params[] = {ids_text(u, req->user_id), id};

		r = db_exec_or_reply(req, DB_PRIMARY, targets[kind].sql, 2, params);
	}
	if (!r)
		return;
	memset(&cm, 0, sizeof(cm));
	if (db_res_rows(r) == 1 && kind == T_MESSAGE)
		policy_read_channel(r, 0, 2, &cm);
	else if (db_res_rows(r) == 1 && kind != T_USER)
		policy_read(r, 0, 2, strtoll(db_res_get(r, 0, 0), NULL, 10), &cm);
	if (db_res_rows(r) != 1 || (kind != T_USER && !policy_readable(&cm))) {
		/* what the reporter cannot see does not exist for them */
		http_reply_error(req, TH_ENOTFOUND, "no such target", "target");
		return;
	}
	snprintf(cid, sizeof(cid), "%s", db_res_get(r, 0, 0));
	snprintf(author, sizeof(author), "%s", db_res_get(r, 0, 1));
	if (limits_take_or_reply(req, LIMIT_REPORT) < 0)
		return;
	{
		const char *params[] = {cid[0] ? cid : NULL,       u,      targets[kind].name, id,
					author[0] ? author : NULL, reason, note ? note : ""};

		r = db_own(req,
			   db_exec(DB_PRIMARY,
				   "INSERT INTO reports (community_id, reporter_id, target_type, "
				   "target_id, target_author_id, reason, note) "
				   "VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
				   7, params));
	}
	if (!r) {
		if (db_last_err() == TH_ECONFLICT)
			http_reply_error(req, TH_ECONFLICT,
					 "you already have an open report of this target", NULL);
		else
			db_reply_failure(req);
		return;
	}
	log_info("audit: user %s reported %s %s", u, targets[kind].name, id);
	report_reply(req, 201, db_res_get(r, 0, 0));
}

/* ?status=open|resolved (default open) into *out; -1 with 400 replied. */
static int status_or_400(struct http_req *req, const char **out)
{
	const char *s = http_query(req, "status");

	if (!s || !*s)
		s = "open";
	if (strcmp(s, "open") != 0 && strcmp(s, "resolved") != 0) {
		http_reply_error(req, TH_EVALIDATION, "status must be open or resolved", "status");
		return -1;
	}
	*out = s;
	return 0;
}

/* One page oldest first of the reports of community cid (0: every queue,
 * for site admins). */
static void queue_reply(struct http_req *req, int64_t cid)
{
	const char *status;
	struct page p;
	char c[24];
	struct db_res *r;

	if (status_or_400(req, &status) < 0 || page_parse_or_400(req, 1, 0, &p) < 0)
		return;
	{
		const char *params[] = {cid ? ids_text(c, cid) : NULL, p.key_s[0], p.limit_s,
					status};

		r = db_exec_or_reply(req, DB_READ,
				     cid ? "SELECT r.id, report_json(r)::text FROM reports r "
					   "WHERE r.community_id = $1::bigint AND r.status = $4 "
					   "AND r.id > $2::bigint ORDER BY r.id LIMIT $3::integer"
					 : "SELECT r.id, report_json(r)::text FROM reports r "
					   "WHERE $1::bigint IS NULL AND r.status = $4 "
					   "AND r.id > $2::bigint ORDER BY r.id LIMIT $3::integer",
				     4, params);
	}
	if (!r)
		return;
	page_reply(req, &p, r, 0, report_row, NULL);
}

void reports_list(struct http_req *req)
{
	struct community cm;

	if (community_access_param(req, "id", ROLE_MODERATOR, &cm) < 0)
		return;
	queue_reply(req, cm.id);
}

void reports_admin_list(struct http_req *req)
{
	if (modlog_admin_or_403(req) == 0)
		queue_reply(req, 0);
}

/* A report being resolved. */
struct report_ref {
	char id[24];
	int64_t cid; /* 0: the site queue */
	int kind;    /* enum target */
	char target[64];
	int64_t author; /* 0: unknown (erased) */
};

/* Removes message id (the REST delete's change and event, in the caller's
 * transaction): 0 done or already gone, -1 replied. */
static int message_remove(struct http_req *req, const char *id)
{
	char by[24];
	const char *params[] = {id, ids_text(by, req->user_id)};
	struct db_res *r;
	struct json_object *ev;
	const char *s;

	r = db_exec_or_reply(req, DB_PRIMARY,
			     "UPDATE messages m SET body = '', deleted_at = now() FROM channels ch "
			     "WHERE m.id = $1::uuid AND m.deleted_at IS NULL AND ch.id = "
			     "m.channel_id "
			     "RETURNING jsonb_build_object('type', 'message_deleted', "
			     "'community_id', "
			     "ch.community_id, 'channel_id', ch.id, 'message_id', m.id, 'seq', "
			     "m.seq, "
			     "'sender_id', m.sender_id, 'deleted_by', $2::bigint) || CASE WHEN "
			     "ch.kind = 'dm' "
			     "THEN jsonb_build_object('inbox', (SELECT "
			     "coalesce(jsonb_agg(d.user_id), '[]') "
			     "FROM dm_members d WHERE d.channel_id = ch.id)) ELSE '{}' END",
			     2, params);
	if (!r)
		return -1;
	if (db_res_rows(r) != 1)
		return 0;
	s = db_res_get(r, 0, 0);
	ev = jh_parse(s, strlen(s));
	if (!ev) {
		http_reply_error(req, TH_EINTERNAL, "out of memory", NULL);
		return -1;
	}
	return events_emit_json(req, ev);
}

/* Loads report :id into rr and checks the caller may resolve it: 0, or -1
 * with 404 / 403 / 409 replied.  cm: the caller's standing in its
 * community (unset for the site queue). */
static int resolvable_or_reply(struct http_req *req, struct report_ref *rr, struct community *cm)
{
	const char *params[1];
	struct db_res *r;
	int64_t id;

	memset(rr, 0, sizeof(*rr));
	memset(cm, 0, sizeof(*cm));
	if (jh_id_or_404(req, http_param(req, "id"), &id) < 0)
		return -1;
	params[0] = ids_text(rr->id, id);
	r = db_exec_or_reply(req, DB_PRIMARY,
			     "SELECT coalesce(community_id, 0), status, target_type, target_id, "
			     "coalesce(target_author_id, 0) FROM reports WHERE id = $1",
			     1, params);
	if (!r)
		return -1;
	if (db_res_rows(r) != 1) {
		http_reply_error(req, TH_ENOTFOUND, "no such report", NULL);
		return -1;
	}
	rr->cid = strtoll(db_res_get(r, 0, 0), NULL, 10);
	rr->kind = target_index(db_res_get(r, 0, 2));
	snprintf(rr->target, sizeof(rr->target), "%s", db_res_get(r, 0, 3));
	rr->author = strtoll(db_res_get(r, 0, 4), NULL, 10);
	if (rr->cid) {
		if (community_access(req, rr->cid, ROLE_MODERATOR, cm) < 0)
			return -1;
	} else {
		int admin = modlog_is_admin(req);

		if (admin < 0)
			return -1;
		if (!admin) { /* the site queue is invisible to others */
			http_reply_error(req, TH_ENOTFOUND, "no such report", NULL);
			return -1;
		}
	}
	if (strcmp(db_res_get(r, 0, 1), "open") != 0) {
		http_reply_error(req, TH_ECONFLICT, "the report is already resolved", NULL);
		return -1;
	}
	return 0;
}

/* The action itself, in the transaction: 0, or -1 replied. */
static int act(struct http_req *req, const struct report_ref *rr, enum action a, struct callexit *x)
{
	const char *params[] = {rr->target};
	struct db_res *r;

	if (a == A_BAN) {
		char reason[48];

		snprintf(reason, sizeof(reason), "report %s", rr->id);
		return ban_apply(req, rr->cid, rr->author, reason, x);
	}
	if (a != A_REMOVE)
		return 0;
	switch (rr->kind) {
	case T_POST:
		return post_remove(req, rr->cid, strtoll(rr->target, NULL, 10)) < 0 ? -1 : 0;
	case T_COMMENT:
		r = db_exec_or_reply(req, DB_PRIMARY,
				     "SELECT post_id FROM comments WHERE id = $1::bigint", 1,
				     params);
		if (!r)
			return -1;
		if (db_res_rows(r) != 1) /* gone already */
			return 0;
		return comment_remove(req, rr->cid, strtoll(db_res_get(r, 0, 0), NULL, 10),
				      strtoll(rr->target, NULL, 10)) < 0
			       ? -1
			       : 0;
	case T_MESSAGE:
		return message_remove(req, rr->target);
	default:
		return 0;
	}
}

/* 0 when report id is among the rows r resolved (RETURNING o.id); else
 * -1, rolled back with 500 replied: the report is locked and open here, so
 * an update that missed it is a bug, and no 200 may claim it resolved. */
static int resolved_or_reply(struct http_req *req, const struct db_res *r, const char *id)
{
	for (int i = 0; i < db_res_rows(r); i++)
		if (strcmp(db_res_get(r, i, 0), id) == 0)
			return 0;
	db_rollback();
	log_error("reports: the resolution of report %s updated %d others, not it", id,
		  db_res_rows(r));
	http_reply_error(req, TH_EINTERNAL, "the report was not resolved", NULL);
	return -1;
}

/* POST /api/reports/:id/resolve {action, note?} */
void reports_resolve(struct http_req *req)
{
	struct report_ref rr;
	struct community cm;
	struct callexit x;
	const char *action, *note;
	char by[24];
	struct db_res *r;
	int a;

	memset(&x, 0, sizeof(x));
	if (jh_string_or_400(req, req->json, "action", 1, 16, JH_REQUIRED, &action) < 0 ||
	    jh_string_or_400(req, req->json, "note", 0, NOTE_MAX, JH_MULTILINE, &note) < 0)
		return;
	a = name_index(action, actions, 4);
	if (a < 0) {
		http_reply_error(req, TH_EVALIDATION, "action must be dismiss, remove, ban or warn",
				 "action");
		return;
	}
	if (resolvable_or_reply(req, &rr, &cm) < 0)
		return;
	if ((a == A_REMOVE && rr.kind == T_USER) ||
	    (a == A_BAN && (!rr.cid || rr.kind == T_USER || !rr.author))) {
		http_reply_error(req, TH_EVALIDATION,
				 a == A_REMOVE ? "a user cannot be removed (ban or suspend them)"
					       : "only the author of a community's content can be "
						 "banned here (suspend a user instead)",
				 "action");
		return;
	}
	if (a == A_BAN && ban_check(req, &cm, rr.author) < 0)
		return;
	if (limits_take_or_reply(req, LIMIT_MANAGE) < 0 || db_begin_or_reply(req) < 0)
		return;
	{
		const char *params[] = {rr.id};

		/* the report's row lock: a second resolution waits, then sees it
		 * resolved */
		r = db_exec_or_reply(req, DB_PRIMARY,
				     "SELECT status FROM reports WHERE id = $1 FOR UPDATE", 1,
				     params);
	}
	if (!r)
		return;
	if (db_res_rows(r) != 1 || strcmp(db_res_get(r, 0, 0), "open") != 0) {
		db_rollback();
		http_reply_error(req, TH_ECONFLICT, "the report is already resolved", NULL);
		return;
	}
	if (act(req, &rr, (enum action)a, &x) < 0)
		return;
	{
		const char *params[] = {rr.id, actions[a], note, ids_text(by, req->user_id)};

		/* the report, and every other open report of the same target at
		 * once.  An erased account's reports have no target (NULL, erase.c):
		 * the report alone, since NULL is no target that others share */
		r = db_exec_or_reply(req, DB_PRIMARY,
				     "UPDATE reports o SET status = 'resolved', resolution = $2, "
				     "resolution_note = $3, resolved_by = $4, resolved_at = now() "
				     "FROM reports r WHERE r.id = $1 AND o.status = 'open' "
				     "AND (o.id = r.id OR (o.target_type = r.target_type "
				     "AND o.target_id = r.target_id)) RETURNING o.id",
				     4, params);
	}
	if (!r || resolved_or_reply(req, r, rr.id) < 0 || db_commit_or_reply(req) < 0)
		return;
	log_info("audit: user %s resolved report %s (%s %s): %s", by, rr.id, targets[rr.kind].name,
		 rr.target, actions[a]);
	if (a == A_BAN)
		ban_applied(req, rr.cid, rr.author, &x);
	else if (a == A_REMOVE && rr.cid && rr.kind != T_MESSAGE)
		feedcache_bump(rr.cid);
	report_reply(req, 200, rr.id);
}
