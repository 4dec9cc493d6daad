/* members: join, leave, list, set role, remove; bans.  Leaving, removal
 * and a ban also take the user out of the community's ongoing calls
 * (callexit.c), and their retained presence there is cleared on every
 * broker: the DELETE of the membership queues the clear in its transaction
 * (a trigger, migration 0046; th-bridge's relay publishes it). */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "community.h"
#include "db.h"
#include "events.h"
#include "jh.h"
#include "log.h"
#include "mirror.h"
#include "page.h"
#include "reply.h"
#include "userlimits.h"

/* {community_id, user, role, joined_at} for one membership row:
 * USER_COLS, then role, joined_at. */
#define MEMBER_SQL                                    \
	"SELECT " USER_COLS ", m.role, " TH_TIME_SQL( \
		"m.joined_at") " FROM memberships m JOIN users u ON u.id = m.user_id "

static struct json_object *member_json(const struct db_res *r, int row, int64_t cid)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "community_id", json_object_new_int64(cid));
	json_object_object_add(o, "user", user_json(r, row, 0));
	json_object_object_add(o, "role", json_object_new_string(db_res_get(r, row, USER_NCOLS)));
	json_object_object_add(o, "joined_at",
			       json_object_new_string(db_res_get(r, row, USER_NCOLS + 1)));
	return o;
}

/* uid's membership row (MEMBER_SQL) as the primary has it now; NULL when
 * an error was replied. */
static struct db_res *member_read(struct http_req *req, int64_t cid, int64_t uid)
{
	char c[24], u[24];
	const char *params[] = {ids_text(c, cid), ids_text(u, uid)};

	return db_exec_or_reply(req, DB_PRIMARY,
				MEMBER_SQL "WHERE m.community_id = $1 AND m.user_id = $2", 2,
				params);
}

/* After the commit of a membership made or changed with role (NULL: this
 * request changed nothing): mirrors it, then replies 200 with it as read
 * back.  The mirror write follows the commit but is not ordered with the
 * Redis writes of a ban or removal that committed right after it (they
 * waited for our lock, not for our mirror write): when the read finds the
 * membership gone, our write may have landed after theirs, so it is undone
 * here, after that read.  A ban that commits after the read writes after it,
 * so its write comes last.  Returns 0 when replied (or an error replied), 1
 * when the membership is already gone (nothing replied). */
static int mirror_and_reply(struct http_req *req, int64_t cid, int64_t uid, const char *role)
{
	struct db_res *r;

	if (role)
		mirror_member(cid, uid, role);
	r = member_read(req, cid, uid);
	if (!r)
		return 0;
	if (db_res_rows(r) != 1) {
		if (role)
			mirror_member_gone(cid, uid);
		return 1;
	}
	http_reply_json(req, 200, member_json(r, 0, cid));
	return 0;
}

/* A join, a role PUT and a ban of one user in one community each take this
 * lock first in their transaction, so they run one after the other: the
 * statements after the wait see what the other committed (each statement of
 * READ COMMITTED reads a new snapshot), so a join or PUT never inserts the
 * membership beside a ban it could not see yet, and a ban never misses a
 * membership that was being inserted.  Keyed by the pair, not a lock of the
 * community row: joins of different users never wait for each other (the
 * prefix keeps the keys apart from the media's sha256 locks).  0, or -1
 * replied. */
static int pair_lock(struct http_req *req, int64_t cid, int64_t uid)
{
	char c[24], u[24];
	const char *params[] = {ids_text(c, cid), ids_text(u, uid)};

	return db_exec_or_reply(req, DB_PRIMARY,
				"SELECT pg_advisory_xact_lock(hashtextextended("
				"'membership:' || $1::text || ':' || $2::text, 0))",
				2, params)
		       ? 0
		       : -1;
}

/* 1 when uid is banned from cid, 0 when not, -1 replied. */
static int is_banned(struct http_req *req, int64_t cid, int64_t uid)
{
	char c[24], u[24];
	const char *params[] = {ids_text(c, cid), ids_text(u, uid)};
	struct db_res *r;

	r = db_exec_or_reply(req, DB_PRIMARY,
			     "SELECT 1 FROM bans WHERE community_id = $1 AND user_id = $2", 2,
			     params);
	return r ? db_res_rows(r) > 0 : -1;
}

/* The join or PUT refused: the user is banned (seen under pair_lock). */
#define NOT_BANNED_SQL                                                       \
	" WHERE NOT EXISTS (SELECT 1 FROM bans b WHERE b.community_id = $1 " \
	"AND b.user_id = $2)"

/* member_count follows every insert and delete of a membership, in the same
 * transaction, so it never drifts from the rows. */
static int count_add(struct http_req *req, int64_t cid, int delta)
{
	char c[24], d[8];
	const char *params[] = {ids_text(c, cid), d};
	struct db_res *r;

	snprintf(d, sizeof(d), "%d", delta);
	r = db_exec_or_reply(req, DB_PRIMARY,
			     "UPDATE communities SET member_count = member_count + $2 WHERE id = "
			     "$1",
			     2, params);
	return r ? 0 : -1;
}

/* The target user's role here (ROLE_NONE when not a member); -1 when the
 * user does not exist (404 replied). */
static int target_role(struct http_req *req, int64_t cid, int64_t uid, enum role *role)
{
	char c[24], u[24];
	const char *params[] = {ids_text(c, cid), ids_text(u, uid)};
	struct db_res *r;

	r = db_exec_or_reply(req, DB_PRIMARY,
			     "SELECT m.role FROM users u LEFT JOIN memberships m "
			     "ON m.user_id = u.id AND m.community_id = $1 WHERE u.id = $2",
			     2, params);
	if (!r)
		return -1;
	if (db_res_rows(r) != 1) {
		http_reply_error(req, TH_ENOTFOUND, "no such user", NULL);
		return -1;
	}
	*role = role_parse(db_res_get(r, 0, 0));
	return 0;
}

/* Removes a membership; 1 when there was one, 0 when not, -1 on error. */
static int membership_delete(struct http_req *req, int64_t cid, int64_t uid)
{
	char c[24], u[24];
	const char *params[] = {ids_text(c, cid), ids_text(u, uid)};
	struct db_res *r;
	int n;

	r = db_exec_or_reply(req, DB_PRIMARY,
			     "DELETE FROM memberships WHERE community_id = $1 AND user_id = $2 "
			     "RETURNING 1",
			     2, params);
	if (!r)
		return -1;
	n = db_res_rows(r);
	if (n && count_add(req, cid, -1) < 0)
		return -1;
	return n;
}

void members_join(struct http_req *req)
{
	char c[24], u[24];
	const char *params[] = {c, u};
	struct db_res *r;
	struct community cm;
	int inserted, banned;

	int64_t id;

	/* API.md: joining a private community is 403 (not the 404 that hides
	 * it elsewhere): its members are added by its admins */
	if (jh_id_or_404(req, http_param(req, "id"), &id) < 0 || community_load(req, id, &cm) < 0)
		return;
	if (cm.banned) {
		http_reply_error(req, TH_EBANNED, "you are banned from this community", NULL);
		return;
	}
	/* a member already: idempotent.  A site admin has a role everywhere
	 * (community_access(): owner) without a membership: the row decides */
	if (cm.my_role != ROLE_NONE) {
		r = member_read(req, cm.id, req->user_id);
		if (!r)
			return;
		if (db_res_rows(r) == 1) {
			http_reply_json(req, 200, member_json(r, 0, cm.id));
			return;
		}
	}
	if (!cm.is_public) {
		http_reply_error(req, TH_EFORBIDDEN, "private communities are joined by invitation",
				 NULL);
		return;
	}
	ids_text(c, cm.id);
	ids_text(u, req->user_id);
	if (limits_take_or_reply(req, LIMIT_MANAGE) < 0 || db_begin_or_reply(req) < 0 ||
	    pair_lock(req, cm.id, req->user_id) < 0)
		return;
	/* cm.banned was read before the lock: a ban since is seen only here.
	 * Two concurrent joins: one row, one count */
	r = db_exec_or_reply(req, DB_PRIMARY,
			     "INSERT INTO memberships (community_id, user_id, role) "
			     "SELECT $1::bigint, $2::bigint, 'member'" NOT_BANNED_SQL
			     " ON CONFLICT DO NOTHING RETURNING 1",
			     2, params);
	if (!r)
		return;
	inserted = db_res_rows(r) == 1;
	banned = inserted ? 0 : is_banned(req, cm.id, req->user_id);
	if (banned < 0)
		return;
	if (banned) {
		db_rollback();
		http_reply_error(req, TH_EBANNED, "you are banned from this community", NULL);
		return;
	}
	if (inserted &&
	    (count_add(req, cm.id, 1) < 0 ||
	     events_emit(req, "member_joined", cm.id, "user_id", req->user_id, NULL, 0) < 0))
		return;
	if (db_commit_or_reply(req) < 0)
		return;
	if (inserted)
		feedcache_bump_access(cm.id);
	if (mirror_and_reply(req, cm.id, req->user_id, inserted ? "member" : NULL) == 1) {
		/* banned (or removed) right after joining */
		banned = is_banned(req, cm.id, req->user_id);
		if (banned > 0)
			http_reply_error(req, TH_EBANNED, "you are banned from this community",
					 NULL);
		else if (banned == 0)
			http_reply_error(req, TH_ENOTFOUND, "no such member", NULL);
	}
}

void members_leave(struct http_req *req)
{
	struct community cm;
	struct callexit x;
	int n;

	if (community_access_param(req, "id", ROLE_NONE, &cm) < 0)
		return;
	if (req->user_id == 0 || cm.my_role == ROLE_NONE) {
		http_reply_error(req, TH_ENOTFOUND, "you are not a member", NULL);
		return;
	}
	/* the owner by the community's row, not by my_role: a site admin's is
	 * owner everywhere (community_access()) and may leave as a member */
	if (cm.owner_id == req->user_id) {
		http_reply_error(req, TH_ECONFLICT, "the owner cannot leave; delete the community",
				 NULL);
		return;
	}
	if (limits_take_or_reply(req, LIMIT_MANAGE) < 0 || db_begin_or_reply(req) < 0)
		return;
	n = membership_delete(req, cm.id, req->user_id);
	if (n < 0)
		return;
	if (n == 0) { /* a site admin who is no member, or a leave that raced */
		db_rollback();
		http_reply_error(req, TH_ENOTFOUND, "you are not a member", NULL);
		return;
	}
	if (events_emit(req, "member_left", cm.id, "user_id", req->user_id, NULL, 0) < 0)
		return;
	if (callexit_leave(req, cm.id, req->user_id, &x) < 0 || db_commit_or_reply(req) < 0)
		return;
	feedcache_bump_access(cm.id);
	mirror_member_gone(cm.id, req->user_id);
	callexit_mirror(req, &x);
	http_reply_empty(req, 204);
}

static struct json_object *member_row(const struct db_res *r, int row, void *ctx)
{
	return member_json(r, row, *(const int64_t *)ctx);
}

void members_list(struct http_req *req)
{
	/* in user id order, which the primary key serves; from the primary,
	 * as every membership read: a caller sees their own join, a
	 * moderator their own role change or removal, at once */
	community_page(req, ROLE_NONE, DB_PRIMARY,
		       MEMBER_SQL "WHERE m.community_id = $1 AND m.user_id > $2 "
				  "ORDER BY m.user_id LIMIT $3",
		       member_row);
}

/* The caller may act on a target only of a lower role; returns -1 (403
 * replied) otherwise. */
static int outranks_or_403(struct http_req *req, const struct community *cm, enum role target)
{
	if (target >= cm->my_role) {
		http_reply_error(req, TH_EFORBIDDEN, "you can act only on members of a lower role",
				 NULL);
		return -1;
	}
	return 0;
}

static int user_param(struct http_req *req, int64_t *uid)
{
	return jh_id_or_404(req, http_param(req, "user_id"), uid);
}

void members_put(struct http_req *req)
{
	struct community cm;
	const char *role_s;
	enum role want, now;
	int64_t uid;
	char c[24], u[24];
	struct db_res *r;
	int inserted;

	if (community_access_param(req, "id", ROLE_ADMIN, &cm) < 0 || user_param(req, &uid) < 0)
		return;
	if (jh_string_or_400(req, req->json, "role", 1, 16, JH_REQUIRED, &role_s) < 0)
		return;
	want = role_parse(role_s);
	if (want == ROLE_NONE || want == ROLE_OWNER) {
		http_reply_error(req, TH_EVALIDATION, "role must be admin, moderator or member",
				 "role");
		return;
	}
	if (want == ROLE_ADMIN && cm.my_role != ROLE_OWNER) {
		http_reply_error(req, TH_EFORBIDDEN, "only the owner grants admin", NULL);
		return;
	}
	if (target_role(req, cm.id, uid, &now) < 0 || outranks_or_403(req, &cm, now) < 0)
		return;
	if (limits_take_or_reply(req, LIMIT_MANAGE) < 0 || db_begin_or_reply(req) < 0 ||
	    pair_lock(req, cm.id, uid) < 0)
		return;
	{
		const char *params[] = {ids_text(c, cm.id), ids_text(u, uid), role_name(want)};

		/* no row: banned (a ban before the lock is seen here) */
		r = db_exec_or_reply(req, DB_PRIMARY,
				     "INSERT INTO memberships (community_id, user_id, role) "
				     "SELECT $1::bigint, $2::bigint, $3" NOT_BANNED_SQL
				     " ON CONFLICT (community_id, user_id) "
				     "DO UPDATE SET role = EXCLUDED.role RETURNING xmax = 0",
				     3, params);
	}
	if (!r)
		return;
	if (db_res_rows(r) != 1) {
		db_rollback();
		http_reply_error(req, TH_ECONFLICT, "the user is banned; unban them first",
				 "user_id");
		return;
	}
	inserted = strcmp(db_res_get(r, 0, 0), "t") == 0;
	if (inserted && count_add(req, cm.id, 1) < 0)
		return;
	if (events_emit(req, inserted ? "member_joined" : "role_changed", cm.id, "user_id", uid,
			NULL, 0) < 0 ||
	    db_commit_or_reply(req) < 0)
		return;
	log_info("audit: user %lld set role %s for user %s in community %s",
		 (long long)req->user_id, role_name(want), u, c);
	feedcache_bump_access(cm.id);
	/* gone: banned or removed right after */
	if (mirror_and_reply(req, cm.id, uid, role_name(want)) == 1)
		http_reply_error(req, TH_ENOTFOUND, "no such member", NULL);
}

void members_delete(struct http_req *req)
{
	struct community cm;
	struct callexit x;
	enum role now;
	int64_t uid;
	int n;

	if (community_access_param(req, "id", ROLE_MODERATOR, &cm) < 0 ||
	    user_param(req, &uid) < 0 || target_role(req, cm.id, uid, &now) < 0)
		return;
	if (now == ROLE_NONE) {
		http_reply_error(req, TH_ENOTFOUND, "not a member", NULL);
		return;
	}
	if (outranks_or_403(req, &cm, now) < 0 || limits_take_or_reply(req, LIMIT_MANAGE) < 0 ||
	    db_begin_or_reply(req) < 0)
		return;
	n = membership_delete(req, cm.id, uid);
	if (n < 0)
		return;
	if (n && events_emit(req, "member_removed", cm.id, "user_id", uid, NULL, 0) < 0)
		return;
	if (callexit_leave(req, cm.id, uid, &x) < 0 || db_commit_or_reply(req) < 0)
		return;
	log_info("audit: user %lld removed user %lld from community %lld", (long long)req->user_id,
		 (long long)uid, (long long)cm.id);
	feedcache_bump_access(cm.id);
	mirror_member_gone(cm.id, uid);
	callexit_mirror(req, &x);
	http_reply_empty(req, 204);
}

#define BAN_SQL                                                      \
	"SELECT " USER_COLS ", b.reason, b.banned_by, " TH_TIME_SQL( \
		"b.created_at") " FROM bans b JOIN users u ON u.id = b.user_id "

static struct json_object *ban_json(const struct db_res *r, int row, int64_t cid)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "community_id", json_object_new_int64(cid));
	json_object_object_add(o, "user", user_json(r, row, 0));
	json_object_object_add(o, "reason", json_object_new_string(db_res_get(r, row, USER_NCOLS)));
	json_object_object_add(o, "banned_by",
			       db_res_isnull(r, row, USER_NCOLS + 1)
				       ? NULL
				       : user_json_int(db_res_get(r, row, USER_NCOLS + 1)));
	json_object_object_add(o, "created_at",
			       json_object_new_string(db_res_get(r, row, USER_NCOLS + 2)));
	return o;
}

int ban_check(struct http_req *req, const struct community *cm, int64_t uid)
{
	enum role now;

	if (target_role(req, cm->id, uid, &now) < 0)
		return -1;
	return outranks_or_403(req, cm, now);
}

int ban_apply(struct http_req *req, int64_t cid, int64_t uid, const char *reason,
	      struct callexit *x)
{
	char c[24], u[24], by[24];
	const char *params[] = {ids_text(c, cid), ids_text(u, uid), ids_text(by, req->user_id),
				reason};
	struct db_res *r;

	/* after any join or PUT of uid that began before: its membership is
	 * committed, so the delete below sees it */
	if (pair_lock(req, cid, uid) < 0)
		return -1;
	r = db_exec_or_reply(req, DB_PRIMARY,
			     "INSERT INTO bans (community_id, user_id, banned_by, reason) "
			     "VALUES ($1, $2, $3, $4) ON CONFLICT (community_id, user_id) "
			     "DO UPDATE SET reason = EXCLUDED.reason, banned_by = "
			     "EXCLUDED.banned_by",
			     4, params);
	if (!r || membership_delete(req, cid, uid) < 0 ||
	    events_emit(req, "member_banned", cid, "user_id", uid, NULL, 0) < 0 ||
	    callexit_leave(req, cid, uid, x) < 0)
		return -1;
	return 0;
}

void ban_applied(struct http_req *req, int64_t cid, int64_t uid, const struct callexit *x)
{
	log_info("audit: user %lld banned user %lld from community %lld", (long long)req->user_id,
		 (long long)uid, (long long)cid);
	feedcache_bump_access(cid);
	mirror_ban(cid, uid);
	callexit_mirror(req, x);
}

void bans_create(struct http_req *req)
{
	struct community cm;
	struct callexit x;
	const char *reason;
	int64_t uid;
	char c[24], u[24];
	struct db_res *r;

	if (community_access_param(req, "id", ROLE_MODERATOR, &cm) < 0 ||
	    jh_int_or_400(req, req->json, "user_id", 1, INT64_MAX - 1, true, NULL, &uid) < 0 ||
	    jh_string_or_400(req, req->json, "reason", 0, 500, JH_MULTILINE, &reason) < 0)
		return;
	if (ban_check(req, &cm, uid) < 0 || limits_take_or_reply(req, LIMIT_MANAGE) < 0 ||
	    db_begin_or_reply(req) < 0 ||
	    ban_apply(req, cm.id, uid, reason ? reason : "", &x) < 0 || db_commit_or_reply(req) < 0)
		return;
	ban_applied(req, cm.id, uid, &x);
	ids_text(c, cm.id);
	ids_text(u, uid);
	{
		const char *params[] = {c, u};

		r = db_exec_or_reply(req, DB_PRIMARY,
				     BAN_SQL "WHERE b.community_id = $1 AND b.user_id = $2", 2,
				     params);
	}
	if (!r)
		return;
	http_reply_json(req, 201, ban_json(r, 0, cm.id));
}

void bans_delete(struct http_req *req)
{
	struct community cm;
	int64_t uid;
	char c[24], u[24];
	const char *params[] = {c, u};
	struct db_res *r;
	int n;

	if (community_access_param(req, "id", ROLE_MODERATOR, &cm) < 0 || user_param(req, &uid) < 0)
		return;
	ids_text(c, cm.id);
	ids_text(u, uid);
	if (limits_take_or_reply(req, LIMIT_MANAGE) < 0 || db_begin_or_reply(req) < 0)
		return;
	r = db_exec_or_reply(req, DB_PRIMARY,
			     "DELETE FROM bans WHERE community_id = $1 AND user_id = $2 RETURNING "
			     "1",
			     2, params);
	if (!r)
		return;
	n = db_res_rows(r);
	if (!n) {
		db_rollback();
		http_reply_error(req, TH_ENOTFOUND, "not banned", NULL);
		return;
	}
	if (events_emit(req, "member_unbanned", cm.id, "user_id", uid, NULL, 0) < 0 ||
	    db_commit_or_reply(req) < 0)
		return;
	feedcache_bump_access(cm.id);
	mirror_unban(cm.id, uid);
	http_reply_empty(req, 204);
}

static struct json_object *ban_row(const struct db_res *r, int row, void *ctx)
{
	return ban_json(r, row, *(const int64_t *)ctx);
}

void bans_list(struct http_req *req)
{
	community_page(req, ROLE_MODERATOR, DB_PRIMARY,
		       BAN_SQL "WHERE b.community_id = $1 AND b.user_id > $2 "
			       "ORDER BY b.user_id LIMIT $3",
		       ban_row);
}
