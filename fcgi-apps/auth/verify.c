/* verify: prove an address (API.md, v1.1: Account lifecycle).
 *
 * POST /api/auth/verify-email/request (Bearer): a mail to the account's
 * address with a token of 24 h; an address already verified gets none.
 * POST /api/auth/email (Bearer) {password, new_email}: the same mail to the
 * new address, and a notice to the old one; nothing changes until the new
 * address is verified.
 * POST /api/auth/verify-email {token}: the token's address becomes the
 * account's, verified.  Every other outstanding token of the account is
 * voided when the address changes (a reset link in the old mailbox must not
 * outlive it).  Identities of providers linked while the address was
 * unproven (before migration 0045) are dropped when it is proven, and the
 * account's sessions with them: whoever linked one did not prove the
 * address, and the sessions it started cannot be told from the others. */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "jh.h"
#include "log.h"
#include "password.h"
#include "reply.h"
#include "user.h"

/* the caller's row: USER_COLS, email, verified, password_hash,
 * credential_epoch */
static struct db_res *caller_row(struct http_req *req)
{
	char id[24];
	const char *p[] = {id};
	struct db_res *r;

	snprintf(id, sizeof(id), "%lld", (long long)req->user_id);
	r = db_exec_or_reply(req, DB_PRIMARY,
			     "SELECT " USER_COLS ", u.email, u.email_verified_at IS NOT NULL, "
			     "u.password_hash, u.credential_epoch FROM users u WHERE u.id = $1",
			     1, p);
	if (r && db_res_rows(r) != 1) {
		http_reply_error(req, TH_EUNAUTHORIZED, "account no longer exists", NULL);
		return NULL;
	}
	return r;
}

/* token + mail in one transaction, committed; 0, or -1 replied.  epoch
 * (an email change): the credential epoch read with the password checked;
 * the row FOR SHARE makes a reset or password change wait for the commit
 * (and then void this token) or, committed before, refuses it (401). */
static int send_verify(struct http_req *req, int64_t uid, const char *to, const char *name,
		       const char *old_addr, const char *epoch)
{
	struct acct_token t;
	char id[24];
	const char *p[] = {id, epoch};
	struct db_res *r;

	acct_token_make(&t);
	if (db_begin_or_reply(req) < 0)
		return -1;
	if (epoch) {
		snprintf(id, sizeof(id), "%lld", (long long)uid);
		r = db_exec_or_reply(req, DB_PRIMARY,
				     "SELECT 1 FROM users WHERE id = $1 AND credential_epoch = "
				     "$2::bigint FOR SHARE",
				     2, p);
		if (!r)
			return -1;
		if (db_res_rows(r) != 1) {
			db_rollback();
			http_reply_error(req, TH_EUNAUTHORIZED,
					 "the account's password changed meanwhile; sign in again",
					 NULL);
			return -1;
		}
	}
	if (acct_token_store(req, &t, uid, "verify_email", to, ACCT_VERIFY_TTL_S) < 0 ||
	    acct_mail_queue(req, "verify_email", to, uid, t.text, name, NULL) < 0)
		return -1;
	if (old_addr &&
	    acct_mail_queue(req, "email_change_notice", old_addr, uid, NULL, name, to) < 0)
		return -1;
	return db_commit_or_reply(req);
}

void verify_request_handler(struct http_req *req)
{
	struct db_res *r;

	if (acct_mail_budget_or_reply(req, "verify_email", req->user_id) < 0)
		return;
	r = caller_row(req);
	if (!r)
		return;
	if (db_res_get(r, 0, USER_NCOLS + 1)[0] == 't') {
		/* nothing to prove: no mail */
		http_reply_empty(req, 204);
		return;
	}
	if (send_verify(req, req->user_id, db_res_get(r, 0, USER_NCOLS), db_res_get(r, 0, 2), NULL,
			NULL) < 0)
		return;
	log_info("audit: user %lld asked for an address verification", (long long)req->user_id);
	http_reply_empty(req, 204);
}

void email_change_handler(struct http_req *req)
{
	const char *password, *new_email;
	struct db_res *r;
	int ok;

	if (jh_string_or_400(req, req->json, "password", 1, 128, JH_REQUIRED, &password) < 0 ||
	    jh_string_or_400(req, req->json, "new_email", 3, 254, JH_REQUIRED, &new_email) < 0)
		return;
	if (!acct_addr_valid(new_email)) {
		http_reply_error(req, TH_EVALIDATION, "new_email is not an email address",
				 "new_email");
		return;
	}
	/* each password check spends the account's budget (shared with
	 * password changes): a stolen access token cannot guess the password */
	if (acct_pwcheck_budget_or_reply(req) < 0)
		return;
	r = caller_row(req);
	if (!r)
		return;
	if (strcasecmp(new_email, db_res_get(r, 0, USER_NCOLS)) == 0) {
		http_reply_error(req, TH_EVALIDATION, "new_email is the current address",
				 "new_email");
		return;
	}
	ok = password_verify(db_res_get(r, 0, USER_NCOLS + 2), password);
	if (ok == PASSWORD_BUSY) {
		http_reply_error(req, TH_EUNAVAILABLE, "too many password checks at once", NULL);
		return;
	}
	if (!ok) {
		http_reply_error(req, TH_EUNAUTHORIZED, "wrong password", "password");
		return;
	}
	{
		const char *p[] = {new_email};
		struct db_res *taken = db_exec_or_reply(req, DB_PRIMARY,
							"SELECT 1 FROM users WHERE email = $1", 1,
							p);

		if (!taken)
			return;
		if (db_res_rows(taken) > 0) {
			http_reply_error(req, TH_ECONFLICT, "email is already registered",
					 "new_email");
			return;
		}
	}
	if (acct_mail_budget_or_reply(req, "verify_email", req->user_id) < 0)
		return;
	if (send_verify(req, req->user_id, new_email, db_res_get(r, 0, 2),
			db_res_get(r, 0, USER_NCOLS), db_res_get(r, 0, USER_NCOLS + 3)) < 0)
		return;
	log_info("audit: user %lld asked to change the address", (long long)req->user_id);
	http_reply_empty(req, 202);
}

/* The address of uid was just proven (in the caller's transaction): its
 * identities linked while it was unproven go, and with them every session of
 * the account (the credential epoch moved).  A result whose rows are the
 * revoked sessions (to publish after the commit; no rows when nothing was
 * dropped), or NULL replied. */
static struct db_res *unproven_identities_drop(struct http_req *req, const char *uid)
{
	const char *p[] = {uid};
	struct db_res *r;
	int n;

	r = db_exec_or_reply(req, DB_PRIMARY,
			     "DELETE FROM user_identities WHERE user_id = $1 "
			     "AND NOT address_proven RETURNING provider",
			     1, p);
	if (!r || (n = db_res_rows(r)) == 0)
		return r;
	log_info("audit: user %s: %d provisional identities dropped by a verification", uid, n);
	if (!db_exec_or_reply(req, DB_PRIMARY,
			      "UPDATE users SET credential_epoch = credential_epoch + 1 "
			      "WHERE id = $1",
			      1, p))
		return NULL;
	return db_exec_or_reply(req, DB_PRIMARY,
				"UPDATE sessions SET revoked_at = now(), revoked_reason = "
				"'identity_unproven' WHERE user_id = $1 AND revoked_at IS NULL "
				"RETURNING id",
				1, p);
}

void verify_handler(struct http_req *req)
{
	const char *text;
	char hex[65], uid[24], email[300];
	struct db_res *r, *revoked;
	struct json_object *user, *o;

	if (jh_string_or_400(req, req->json, "token", 1, 256, JH_REQUIRED, &text) < 0)
		return;
	acct_token_hash(text, hex, sizeof(hex));
	if (db_begin_or_reply(req) < 0)
		return;
	{
		const char *p[] = {hex};

		r = db_exec_or_reply(req, DB_PRIMARY,
				     "UPDATE account_tokens SET used_at = now() "
				     "WHERE token_hash = decode($1, 'hex') AND kind = "
				     "'verify_email' "
				     "AND used_at IS NULL AND expires_at > now() "
				     "RETURNING user_id, email",
				     1, p);
	}
	if (!r)
		return;
	if (db_res_rows(r) != 1) {
		db_rollback();
		http_reply_error(req, TH_EVALIDATION, "invalid, expired or already used token",
				 "token");
		return;
	}
	snprintf(uid, sizeof(uid), "%s", db_res_get(r, 0, 0));
	snprintf(email, sizeof(email), "%s", db_res_get(r, 0, 1));
	{
		const char *p[] = {uid, email};

		/* the address may have been taken since the request: then
		 * nothing changes (the unique key answers, rolled back) */
		r = db_own(req,
			   db_exec(DB_PRIMARY,
				   "WITH old AS (SELECT email FROM users WHERE id = $1 FOR UPDATE) "
				   "UPDATE users u SET email = $2, email_verified_at = now() "
				   "FROM old WHERE u.id = $1 "
				   "RETURNING " USER_COLS ", u.email, old.email <> $2::citext",
				   2, p));
	}
	if (!r) {
		if (db_last_err() == TH_ECONFLICT)
			http_reply_error(req, TH_ECONFLICT, "email is already registered", "token");
		else
			db_reply_failure(req);
		db_rollback();
		return;
	}
	if (db_res_rows(r) != 1) {
		db_rollback();
		http_reply_error(req, TH_EVALIDATION, "invalid, expired or already used token",
				 "token");
		return;
	}
	if (db_res_get(r, 0, USER_NCOLS + 1)[0] == 't') {
		const char *p[] = {uid};

		/* a new address: every token mailed to the old one is void */
		if (!db_exec_or_reply(req, DB_PRIMARY,
				      "UPDATE account_tokens SET used_at = now() "
				      "WHERE user_id = $1 AND used_at IS NULL",
				      1, p))
			return;
	}
	revoked = unproven_identities_drop(req, uid);
	if (!revoked)
		return;
	user = user_json(r, 0, 0);
	if (db_commit_or_reply(req) < 0) {
		json_object_put(user);
		return;
	}
	publish_revoked(revoked, "an identity linked to an unproven address dropped");
	me_cache_forget(strtoll(uid, NULL, 10));
	log_info("audit: user %s verified an address%s", uid,
		 db_res_get(r, 0, USER_NCOLS + 1)[0] == 't' ? " (changed)" : "");
	json_object_object_add(user, "email", json_object_new_string(db_res_get(r, 0, USER_NCOLS)));
	json_object_object_add(user, "email_verified", json_object_new_boolean(1));
	o = json_object_new_object();
	json_object_object_add(o, "user", user);
	http_reply_json(req, 200, o);
	http_add_header(req, "Cache-Control", "no-store");
}
