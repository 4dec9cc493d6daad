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
 * the caller, the request's (jh_own).  in_tx: the caller has a transaction open, which
 * this commits (registration: the account and its session together); 0: the
 * session is created by one self-committing statement (login). */
void session_start_reply(struct http_req *req, int status, int64_t user_id,
			 struct json_object *user, int in_tx);
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

/* devices.c: GET /api/auth/sessions, DELETE /api/auth/sessions/:id; the
 * User-Agent a new session stores (printable ASCII, at most DEVICES_UA_MAX
 * bytes, into out) */
#define DEVICES_UA_MAX 256
const char *devices_user_agent(const struct http_req *req, char *out, size_t size);
void sessions_list_handler(struct http_req *req);
void sessions_delete_handler(struct http_req *req);

/* keys.c */
void jwks_handler(struct http_req *req);

#endif
