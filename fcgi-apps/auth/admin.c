/* admin: a site admin suspends an account and lifts the suspension
 * (API.md v1.1 "Moderation"; users.is_admin is set with scripts/admin).
 *
 * Suspending sets users.suspended_at and revokes every session of the
 * account in one transaction; after the commit the revocations reach every
 * worker and broker (publish_revoked: the brokers close the sockets within
 * their once-a-second sweep).  Login then answers 403 `suspended` (to who
 * gives the right password only) and refresh 401; a sign-in that checked
 * its credentials before the suspension and starts its session after it
 * gets 403 too (the row's lock and the credential epoch, migration 0045:
 * session_start_reply).  The modlog's site-wide
 * entry is the database's (0033), with the caller as its actor.  An admin
 * is not suspended (403: revoke the grant first), nor the caller. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "auth.h"
#include "ids.h"
#include "jh.h"
#include "log.h"
#include "reply.h"
#include "user.h"

/* 0 when the caller is a site admin and :id names another user who is
 * no admin (*uid), else -1 with 403 / 404 replied. */
static int target_or_reply(struct http_req *req, int64_t *uid)
{
	char me[24], u[24];
	const char *params[2];
	struct db_res *r;

	if (jh_id_or_404(req, http_param(req, "id"), uid) < 0)
		return -1;
	params[0] = ids_text(me, req->user_id);
	params[1] = ids_text(u, *uid);
	r = db_exec_or_reply(req, DB_PRIMARY,
			     "SELECT (SELECT is_admin FROM users WHERE id = $1), "
			     "(SELECT is_admin FROM users WHERE id = $2)",
			     2, params);
	if (!r)
		return -1;
	if (strcmp(db_res_get(r, 0, 0), "t") != 0) {
		http_reply_error(req, TH_EFORBIDDEN, "site admins only", NULL);
		return -1;
	}
	if (db_res_isnull(r, 0, 1)) {
		http_reply_error(req, TH_ENOTFOUND, "no such user", NULL);
		return -1;
	}
	if (strcmp(db_res_get(r, 0, 1), "t") == 0) {
		http_reply_error(req, TH_EFORBIDDEN, "an admin cannot be suspended", NULL);
		return -1;
	}
	return 0;
}

/* 200 {user_id, suspended_at} of user u. */
static void state_reply(struct http_req *req, const char *u)
{
	const char *params[] = {u};
	struct db_res *r;
	struct json_object *o;

	r = db_exec_or_reply(req, DB_PRIMARY,
			     "SELECT " TH_TIME_SQL("suspended_at") " FROM users WHERE id = $1", 1,
			     params);
	if (!r)
		return;
	o = jh_object(req);
	if (!o || db_res_rows(r) != 1) {
		http_reply_error(req, TH_EINTERNAL, NULL, NULL);
		return;
	}
	json_object_object_add(o, "user_id", user_json_int(u));
	json_object_object_add(o, "suspended_at",
			       db_res_isnull(r, 0, 0)
				       ? NULL
				       : json_object_new_string(db_res_get(r, 0, 0)));
	http_reply_json(req, 200, json_object_get(o));
}

/* Suspends (on) or lifts the suspension of user :id: 200 with its state,
 * 409 when it is so already.  A suspension revokes every session in the
 * same transaction and publishes the revocations after the commit. */
static void suspension_set(struct http_req *req, int on)
{
	int64_t uid;
	char u[24];
	const char *params[] = {u};
	struct db_res *r, *revoked = NULL;

	if (target_or_reply(req, &uid) < 0)
		return;
	ids_text(u, uid);
	if (db_begin_or_reply(req) < 0)
		return;
	r = db_exec_or_reply(req, DB_PRIMARY,
			     on ? "UPDATE users SET suspended_at = now(), credential_epoch = "
				  "credential_epoch + 1 WHERE id = $1 AND suspended_at IS NULL"
				: "UPDATE users SET suspended_at = NULL WHERE id = $1 "
				  "AND suspended_at IS NOT NULL",
			     1, params);
	if (!r)
		return;
	if (db_res_affected(r) != 1) {
		db_rollback();
		http_reply_error(req, TH_ECONFLICT,
				 on ? "the account is already suspended"
				    : "the account is not suspended",
				 NULL);
		return;
	}
	if (on) {
		revoked =
			db_exec_or_reply(req, DB_PRIMARY,
					 "UPDATE sessions SET revoked_at = now(), revoked_reason = "
					 "'suspended' WHERE user_id = $1 AND revoked_at IS NULL "
					 "RETURNING id",
					 1, params);
		if (!revoked)
			return;
	}
	if (db_commit_or_reply(req) < 0)
		return;
	if (revoked)
		publish_revoked(revoked, "suspended");
	me_cache_forget(uid);
	log_info("audit: user %lld %s user %s", (long long)req->user_id,
		 on ? "suspended" : "lifted the suspension of", u);
	state_reply(req, u);
}

void admin_suspend_handler(struct http_req *req)
{
	suspension_set(req, 1);
}

void admin_unsuspend_handler(struct http_req *req)
{
	suspension_set(req, 0);
}
