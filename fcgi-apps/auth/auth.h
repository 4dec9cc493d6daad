/* The auth app's internal interfaces (never included by another app). */
#ifndef TH_AUTH_H
#define TH_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "http.h"

#define AUTH_BODY_LIMIT (16 * 1024)

/* settings read once at start-up (accounts.c) */
struct auth_limits {
	long login_user_max, login_ip_max, login_window_s;
	long register_max, register_window_s;
};
extern struct auth_limits auth_limits;

/* sessions.c */
/* Creates a session for user_id and replies `status` with {user,
 * access_token, refresh_token, expires_in}; user is the public user JSON of
 * the caller, the request's (jh_own).  epoch: users.credential_epoch as read
 * together with the credential the caller checked (the password hash, the
 * provider's identity): the session is created only while the account's
 * epoch is still that and it is not suspended, else 403 suspended or 401
 * with stale_msg is replied (a reset, a password change or a suspension
 * came between the check and now; migration 0045).  in_tx: the caller has
 * a transaction open, which this commits (registration: the account and its
 * session together) or rolls back (no session); 0: the session is created
 * by one self-committing statement (login). */
void session_start_reply(struct http_req *req, int status, int64_t user_id, const char *epoch,
			 const char *stale_msg, struct json_object *user, int in_tx);
void refresh_handler(struct http_req *req);
void logout_handler(struct http_req *req);

/* accounts.c */
int accounts_init(void);
void register_handler(struct http_req *req);
void login_handler(struct http_req *req);
void me_handler(struct http_req *req);
/* The per-worker cache of GET /api/auth/me (TH_ME_CACHE_SLOTS, default 1024;
 * TH_ME_CACHE_TTL_MS, default 5000; either 0 switches it off).  0, or -1. */
int me_cache_init(void);
void me_cache_fini(void);
/* Drops this worker's cached GET /api/auth/me of user_id (its row changed);
 * the other workers' copies live out their TTL. */
void me_cache_forget(int64_t user_id);

/* acctoken.c: tokens of account mails and the mail budgets */
#define ACCT_TOKEN_TEXT 64 /* base64url of 32 bytes is 43 chars */
#define ACCT_VERIFY_TTL_S 86400
#define ACCT_RESET_TTL_S 3600
struct acct_token {
	char text[ACCT_TOKEN_TEXT]; /* into the mail */
	char hash_hex[65];          /* stored */
};
/* TH_RL_MAIL_MAX mails of a kind per account per TH_RL_MAIL_WINDOW (3 an
 * hour); forgot: TH_RL_FORGOT_ADDR_MAX per address (3) and
 * TH_RL_FORGOT_IP_MAX per client address (20) per window; a password change
 * TH_RL_PASSWORD_CHANGE_MAX (10) attempts per account per window */
struct acct_limits {
	long mail_max, mail_window_s, forgot_addr_max, forgot_ip_max, pwchange_max;
	long export_max, export_window_s;
};
extern struct acct_limits acct_limits;
void acct_limits_init(void);
void acct_token_make(struct acct_token *t);
void acct_token_hash(const char *text, char *hex, size_t hexsize);
/* Stores t for uid (in the caller's transaction).  0, or -1 replied. */
int acct_token_store(struct http_req *req, const struct acct_token *t, int64_t uid,
		     const char *kind, const char *email, long ttl_s);
/* mail_queue() with params {token, name, new_email} (each may be NULL), in
 * the caller's transaction.  0, or -1 replied and rolled back. */
int acct_mail_queue(struct http_req *req, const char *kind, const char *to, int64_t uid,
		    const char *token, const char *name, const char *new_email);
/* One hit on rl:<what>:<who>; over max in the window: 429 with Retry-After.
 * 0, or -1 replied. */
int acct_budget_or_reply(struct http_req *req, const char *what, const char *who, long max,
			 long window_s);
/* the budget of mails of kind for uid */
int acct_mail_budget_or_reply(struct http_req *req, const char *kind, int64_t uid);
/* the caller's budget of password checks (POST /password, /email) */
int acct_pwcheck_budget_or_reply(struct http_req *req);
/* An address the mailer can send to, with a dot in its domain. */
int acct_addr_valid(const char *s);

/* verify.c: POST /api/auth/verify-email/request, /verify-email, /email */
void verify_request_handler(struct http_req *req);
void verify_handler(struct http_req *req);
void email_change_handler(struct http_req *req);

/* recovery.c: POST /api/auth/password/forgot, /password/reset, /password */
void forgot_handler(struct http_req *req);
void reset_handler(struct http_req *req);
void password_change_handler(struct http_req *req);
/* After commit: every revoked session (column 0 of r's rows) reaches Redis,
 * the workers and the brokers (which close its sockets within their
 * sweep, at most a second). */
struct db_res;
void publish_revoked(const struct db_res *r, const char *why);

/* admin.c: POST /api/admin/users/:id/suspend and /unsuspend (site admins) */
void admin_suspend_handler(struct http_req *req);
void admin_unsuspend_handler(struct http_req *req);

/* devices.c: GET /api/auth/sessions, DELETE /api/auth/sessions/:id; the
 * User-Agent a new session stores (printable ASCII, at most DEVICES_UA_MAX
 * bytes, into out) */
#define DEVICES_UA_MAX 256
const char *devices_user_agent(const struct http_req *req, char *out, size_t size);
void sessions_list_handler(struct http_req *req);
void sessions_delete_handler(struct http_req *req);

/* totp.c: POST /api/auth/totp/setup, /enable, /disable; and the login's
 * second factor: code NULL replies 401 totp_required (-1); else 1 when code
 * (a 6-digit code not used before, or an unused recovery code) is accepted
 * and now used, 0 when not, -1 replied (database). */
void totp_setup_handler(struct http_req *req);
void totp_enable_handler(struct http_req *req);
void totp_disable_handler(struct http_req *req);
int totp_check_login(struct http_req *req, int64_t uid, const char *code);

/* erase.c: DELETE /api/auth/me {password, totp?} -> 202 (account_erase()) */
void erase_handler(struct http_req *req);

/* export.c: GET /api/auth/me/export, streamed JSON of what the account wrote
 * and owns; TH_RL_EXPORT_MAX (2) per account per TH_RL_EXPORT_WINDOW (3600 s) */
void export_handler(struct http_req *req);

/* keys.c */
void jwks_handler(struct http_req *req);

#endif
