/* recovery: forgotten and changed passwords (API.md, v1.1: Account
 * lifecycle).
 *
 * POST /api/auth/password/forgot {email}: 204 whatever the address.  Both
 * answers do the same work: the budgets (per address and per client
 * address, counted for unknown addresses too), a token made, one lookup, an
 * outbox row queued and committed: for an account, its reset token and the
 * mail; for an unknown address, a row of kind "none" the sender drops.
 * POST /api/auth/password/reset {token, password}: the token (1 h) is used
 * once; the password is replaced and every session of the account revoked.
 * POST /api/auth/password (Bearer) {current_password, new_password}: every
 * session but the caller's revoked, and the account told by mail.
 *
 * Both void every other unused token of the account, whatever its kind: a
 * pending email change (its verify_email token in the new mailbox) must not
 * move the account away after its owner took it back.  Both move the
 * account's credential epoch (migration 0045), so a sign-in that checked the
 * old password before and starts its session after gets none
 * (session_start_reply).  A reset also drops the identities of providers
 * linked while the address was unproven: the mail proves the address is the
 * resetter's, not that the identity is. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "jh.h"
#include "log.h"
#include "password.h"
#include "reply.h"
#include "revoke.h"
#include "user.h"

/* Hashes password into hash (PASSWORD_HASH_MAX); 0, or -1 replied. */
static int hash_or_reply(struct http_req *req, const char *password, char *hash)
{
	switch (password_hash(password, hash, PASSWORD_HASH_MAX)) {
	case 0:
		return 0;
	case PASSWORD_BUSY:
		http_reply_error(req, TH_EUNAVAILABLE, "too many password checks at once", NULL);
		return -1;
	default:
		http_reply_error(req, TH_EINTERNAL, "cannot hash the password", NULL);
		return -1;
	}
}

void publish_revoked(const struct db_res *r, const char *why)
{
	int i, n = db_res_rows(r);

	for (i = 0; i < n; i++) {
		revoke_publish(strtoll(db_res_get(r, i, 0), NULL, 10));
		log_info("audit: session %s revoked (%s)", db_res_get(r, i, 0), why);
	}
}

void forgot_handler(struct http_req *req)
{
	const char *email;
	char lower[300];
	struct acct_token t;
	struct db_res *r;
	size_t i;

	if (jh_string_or_400(req, req->json, "email", 3, 254, JH_REQUIRED, &email) < 0)
		return;
	if (!acct_addr_valid(email)) {
		http_reply_error(req, TH_EVALIDATION, "email is not an email address", "email");
		return;
	}
	for (i = 0; email[i] && i + 1 < sizeof(lower); i++)
		lower[i] = (char)tolower((unsigned char)email[i]);
	lower[i] = '\0';
	if (acct_budget_or_reply(req, "forgot:ip", req->client_addr, acct_limits.forgot_ip_max,
				 acct_limits.mail_window_s) < 0 ||
	    acct_budget_or_reply(req, "forgot:addr", lower, acct_limits.forgot_addr_max,
				 acct_limits.mail_window_s) < 0)
		return;
	acct_token_make(&t);
	if (db_begin_or_reply(req) < 0)
		return;
	{
		const char *p[] = {lower};

		r = db_exec_or_reply(req, DB_PRIMARY,
				     "SELECT u.id, u.email, u.display_name FROM users u "
				     "WHERE u.email = $1 FOR UPDATE",
				     1, p);
	}
	if (!r)
		return;
	if (db_res_rows(r) == 1) {
		int64_t uid = strtoll(db_res_get(r, 0, 0), NULL, 10);

		if (acct_token_store(req, &t, uid, "password_reset", db_res_get(r, 0, 1),
				     ACCT_RESET_TTL_S) < 0 ||
		    acct_mail_queue(req, "password_reset", db_res_get(r, 0, 1), uid, t.text,
				    db_res_get(r, 0, 2), NULL) < 0)
			return;
		log_info("audit: password reset mailed to user %lld", (long long)uid);
	} else if (acct_mail_queue(req, "none", lower, 0, NULL, NULL, NULL) < 0) {
		return;
	}
	if (db_commit_or_reply(req) < 0)
		return;
	http_reply_empty(req, 204);
}

void reset_handler(struct http_req *req)
{
	const char *text, *password;
	char hex[65], hash[PASSWORD_HASH_MAX], uid[24];
	const char *ph[] = {hex};
	struct db_res *r;

	if (jh_string_or_400(req, req->json, "token", 1, 256, JH_REQUIRED, &text) < 0 ||
	    jh_string_or_400(req, req->json, "password", 8, 128, JH_REQUIRED, &password) < 0)
		return;
	acct_token_hash(text, hex, sizeof(hex));
	/* a look first: no hash is spent on a token that cannot work */
	r = db_exec_or_reply(req, DB_PRIMARY,
			     "SELECT 1 FROM account_tokens WHERE token_hash = decode($1, 'hex') "
			     "AND kind = 'password_reset' AND used_at IS NULL AND expires_at > "
			     "now()",
			     1, ph);
	if (!r)
		return;
	if (db_res_rows(r) != 1) {
		http_reply_error(req, TH_EVALIDATION, "invalid, expired or already used token",
				 "token");
		return;
	}
	if (hash_or_reply(req, password, hash) < 0)
		return;
	if (db_begin_or_reply(req) < 0)
		return;
	/* the use itself: of two racing resets one finds it used */
	r = db_exec_or_reply(req, DB_PRIMARY,
			     "UPDATE account_tokens SET used_at = now() "
			     "WHERE token_hash = decode($1, 'hex') AND kind = 'password_reset' "
			     "AND used_at IS NULL AND expires_at > now() RETURNING user_id",
			     1, ph);
	if (!r)
		return;
	if (db_res_rows(r) != 1) {
		db_rollback();
		http_reply_error(req, TH_EVALIDATION, "invalid, expired or already used token",
				 "token");
		return;
	}
	snprintf(uid, sizeof(uid), "%s", db_res_get(r, 0, 0));
	{
		const char *p[] = {uid, hash};

		/* the mail reached the account's address: it is proven too, when
		 * the token was sent to the address the account still has (an
		 * address change voids the tokens of the old one: verify.c).  The
		 * row's lock makes a sign-in that is starting its session now
		 * finish first (the revocation below sees it) or find the epoch
		 * moved */
		r = db_exec_or_reply(req, DB_PRIMARY,
				     "UPDATE users u SET password_hash = $2, email_verified_at = "
				     "COALESCE(u.email_verified_at, now()), "
				     "credential_epoch = u.credential_epoch + 1 WHERE u.id = $1",
				     2, p);
		if (!r)
			return;
		/* every other link mailed to the account dies with this one: other
		 * resets, and a pending email change started by whoever had the
		 * account before its owner took it back */
		r = db_exec_or_reply(req, DB_PRIMARY,
				     "UPDATE account_tokens SET used_at = now() WHERE user_id = $1 "
				     "AND used_at IS NULL",
				     1, p);
		if (!r)
			return;
		/* an identity linked while nobody had proven the address (before
		 * migration 0045) is not the address owner's */
		r = db_exec_or_reply(req, DB_PRIMARY,
				     "DELETE FROM user_identities WHERE user_id = $1 "
				     "AND NOT address_proven RETURNING provider",
				     1, p);
		if (!r)
			return;
		if (db_res_rows(r) > 0)
			log_info("audit: user %s: %d provisional identities dropped by a reset",
				 uid, db_res_rows(r));
		r = db_exec_or_reply(req, DB_PRIMARY,
				     "UPDATE sessions SET revoked_at = now(), revoked_reason = "
				     "'password_reset' WHERE user_id = $1 AND revoked_at IS NULL "
				     "RETURNING id",
				     1, p);
		if (!r)
			return;
	}
	if (db_commit_or_reply(req) < 0)
		return;
	publish_revoked(r, "password reset");
	me_cache_forget(strtoll(uid, NULL, 10));
	log_info("audit: user %s reset the password", uid);
	http_reply_empty(req, 204);
}

void password_change_handler(struct http_req *req)
{
	const char *current, *next;
	char hash[PASSWORD_HASH_MAX], uid[24], sid[24];
	const char *pu[] = {uid};
	struct db_res *r, *u;
	int ok;

	if (jh_string_or_400(req, req->json, "current_password", 1, 128, JH_REQUIRED, &current) <
		    0 ||
	    jh_string_or_400(req, req->json, "new_password", 8, 128, JH_REQUIRED, &next) < 0)
		return;
	if (acct_pwcheck_budget_or_reply(req) < 0)
		return;
	snprintf(uid, sizeof(uid), "%lld", (long long)req->user_id);
	snprintf(sid, sizeof(sid), "%lld", (long long)req->session_id);
	u = db_exec_or_reply(req, DB_PRIMARY,
			     "SELECT u.password_hash, u.email, u.display_name, u.credential_epoch "
			     "FROM users u WHERE u.id = $1",
			     1, pu);
	if (!u)
		return;
	if (db_res_rows(u) != 1) {
		http_reply_error(req, TH_EUNAUTHORIZED, "account no longer exists", NULL);
		return;
	}
	ok = password_verify(db_res_get(u, 0, 0), current);
	if (ok == PASSWORD_BUSY) {
		http_reply_error(req, TH_EUNAVAILABLE, "too many password checks at once", NULL);
		return;
	}
	if (!ok) {
		http_reply_error(req, TH_EUNAUTHORIZED, "wrong password", "current_password");
		return;
	}
	if (hash_or_reply(req, next, hash) < 0)
		return;
	if (db_begin_or_reply(req) < 0)
		return;
	{
		const char *p[] = {uid, hash, db_res_get(u, 0, 3)}, *ps[] = {uid, sid};

		/* only over the password checked above: a reset (or another
		 * change) that came between revoked this session and set a
		 * password this one must not overwrite */
		r = db_exec_or_reply(req, DB_PRIMARY,
				     "UPDATE users SET password_hash = $2, credential_epoch = "
				     "credential_epoch + 1 WHERE id = $1 AND credential_epoch = "
				     "$3::bigint",
				     3, p);
		if (!r)
			return;
		if (db_res_affected(r) != 1) {
			db_rollback();
			http_reply_error(req, TH_EUNAUTHORIZED,
					 "the account's password changed meanwhile; sign in again",
					 NULL);
			return;
		}
		/* a link mailed before the change would undo it: a reset link, a
		 * pending email change */
		r = db_exec_or_reply(req, DB_PRIMARY,
				     "UPDATE account_tokens SET used_at = now() WHERE user_id = $1 "
				     "AND used_at IS NULL",
				     1, p);
		if (!r)
			return;
		if (acct_mail_queue(req, "password_changed", db_res_get(u, 0, 1), req->user_id,
				    NULL, db_res_get(u, 0, 2), NULL) < 0)
			return;
		r = db_exec_or_reply(req, DB_PRIMARY,
				     "UPDATE sessions SET revoked_at = now(), revoked_reason = "
				     "'password_change' WHERE user_id = $1 AND id <> $2 "
				     "AND revoked_at IS NULL RETURNING id",
				     2, ps);
		if (!r)
			return;
	}
	if (db_commit_or_reply(req) < 0)
		return;
	publish_revoked(r, "password change");
	log_info("audit: user %s changed the password", uid);
	http_reply_empty(req, 204);
}
