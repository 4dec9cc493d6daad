/* sessions: start (after register/login), refresh with rotation, logout.
 *
 * Refresh tokens: 256 random bits, base64url; the database keeps only their
 * SHA-256.  Each is single-use: a refresh marks it used and issues the next
 * one in the same transaction.  Presenting a used one again is treated as
 * theft: the whole session is revoked, with every access token it minted. */
#include <json-c/json.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "config.h"
#include "db.h"
#include "jh.h"
#include "log.h"
#include "reply.h"
#include "revoke.h"
#include "token.h"
#include "user.h"

#define REFRESH_BYTES 32
#define REFRESH_TEXT 64 /* base64url of 32 bytes is 43 chars */

struct refresh {
	char text[REFRESH_TEXT];                         /* given to the client */
	char hash_hex[crypto_hash_sha256_BYTES * 2 + 1]; /* stored */
};

static void refresh_hash(const char *text, char *hex, size_t hexsize)
{
	unsigned char digest[crypto_hash_sha256_BYTES];

	crypto_hash_sha256(digest, (const unsigned char *)text, strlen(text));
	sodium_bin2hex(hex, hexsize, digest, sizeof(digest));
}

static void refresh_new(struct refresh *rt)
{
	unsigned char rnd[REFRESH_BYTES];

	randombytes_buf(rnd, sizeof(rnd));
	sodium_bin2base64(rt->text, sizeof(rt->text), rnd, sizeof(rnd),
			  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	sodium_memzero(rnd, sizeof(rnd));
	refresh_hash(rt->text, rt->hash_hex, sizeof(rt->hash_hex));
}

static long refresh_ttl(void)
{
	static long ttl;

	if (!ttl)
		ttl = (long)cfg_int("TH_REFRESH_TTL", 2592000, 60, 31536000);
	return ttl;
}

/* Stores a new refresh token for the session (inside the caller's
 * transaction).  0, or -1 with the error replied. */
static int refresh_store(struct http_req *req, const struct refresh *rt, const char *sid)
{
	char ttl[24];
	const char *params[] = {rt->hash_hex, sid, ttl};
	struct db_res *r;

	snprintf(ttl, sizeof(ttl), "%ld", refresh_ttl());
	r = db_exec_or_reply(req, DB_PRIMARY,
			     "INSERT INTO refresh_tokens (token_hash, session_id, expires_at) "
			     "VALUES (decode($1, 'hex'), $2, now() + $3::bigint * interval '1 "
			     "second')",
			     3, params);
	if (!r)
		return -1;
	return 0;
}

/* Commits the caller's transaction (commit: 0 when there is none) and
 * replies {user, access_token, refresh_token, expires_in}. */
static void tokens_reply(struct http_req *req, int status, int64_t uid, int64_t sid,
			 const struct refresh *rt, struct json_object *user, int commit)
{
	char *access = token_issue(req->arena, uid, sid);
	struct json_object *o;

	if (!access) {
		http_reply_error(req, TH_EINTERNAL, "cannot sign a token", NULL);
		return;
	}
	if (commit && db_commit() < 0) {
		http_reply_error(req, TH_EUNAVAILABLE, "database unavailable", NULL);
		return;
	}
	o = json_object_new_object();
	json_object_object_add(o, "user", json_object_get(user));
	json_object_object_add(o, "access_token", json_object_new_string(access));
	json_object_object_add(o, "refresh_token", json_object_new_string(rt->text));
	json_object_object_add(o, "expires_in", json_object_new_int64(token_ttl()));
	http_reply_json(req, status, o);
	http_add_header(req, "Cache-Control", "no-store");
}

/* No session was started: the account is suspended now (403), or its
 * credentials changed or it went away since the caller's check (401 msg). */
static void stale_reply(struct http_req *req, const char *uid, const char *msg)
{
	const char *params[] = {uid};
	struct db_res *r;

	r = db_exec_or_reply(req, DB_PRIMARY,
			     "SELECT suspended_at IS NOT NULL FROM users WHERE id = $1", 1, params);
	if (!r)
		return;
	log_info("audit: no session for user %s: its credentials changed during the sign-in", uid);
	if (db_res_rows(r) == 1 && db_res_get(r, 0, 0)[0] == 't')
		http_reply_error(req, TH_ESUSPENDED, "the account is suspended", NULL);
	else
		http_reply_error(req, TH_EUNAUTHORIZED, msg, NULL);
}

void session_start_reply(struct http_req *req, int status, int64_t user_id, const char *epoch,
			 const char *stale_msg, struct json_object *user, int in_tx)
{
	char uid[24], sid[24], ttl[24], ua[DEVICES_UA_MAX + 1];
	struct refresh rt;
	struct db_res *r;

	snprintf(uid, sizeof(uid), "%lld", (long long)user_id);
	snprintf(ttl, sizeof(ttl), "%ld", refresh_ttl());
	refresh_new(&rt);
	{
		const char *params[] = {uid,
					req->client_addr,
					rt.hash_hex,
					ttl,
					devices_user_agent(req, ua, sizeof(ua)),
					epoch};

		/* the session and its first refresh token in one statement: one
		 * round trip, and without the caller's transaction it commits by
		 * itself (a login needs no BEGIN/COMMIT round trips either).
		 * Only while the account's credentials are the ones the caller
		 * checked (migration 0045): the row FOR SHARE either comes first
		 * (a reset, password change or suspension then waits for this
		 * statement, and its revocation sees the session) or after such a
		 * change committed, whose moved epoch (or suspension) the locked
		 * row shows: then no session */
		r = db_exec_or_reply(req, DB_PRIMARY,
				     "WITH u AS (SELECT id FROM users WHERE id = $1 "
				     "AND credential_epoch = $6::bigint AND suspended_at IS NULL "
				     "FOR SHARE), "
				     "s AS (INSERT INTO sessions (user_id, client_addr, "
				     "user_agent) SELECT u.id, $2, $5 FROM u RETURNING id) "
				     "INSERT INTO refresh_tokens (token_hash, session_id, "
				     "expires_at) "
				     "SELECT decode($3, 'hex'), s.id, "
				     "now() + $4::bigint * interval '1 second' FROM s RETURNING "
				     "session_id",
				     6, params);
	}
	if (!r)
		return;
	if (db_res_rows(r) != 1) {
		if (in_tx)
			db_rollback();
		stale_reply(req, uid, stale_msg);
		return;
	}
	snprintf(sid, sizeof(sid), "%s", db_res_get(r, 0, 0));
	log_info("audit: session %s started for user %s", sid, uid);
	tokens_reply(req, status, user_id, strtoll(sid, NULL, 10), &rt, user, in_tx);
}

/* The token was used before: revoke its session (theft or a racing twin). */
static void refresh_reused(struct http_req *req, const char *sid)
{
	const char *params[] = {sid};
	struct db_res *r;

	r = db_own(req, db_exec(DB_PRIMARY,
				"UPDATE sessions SET revoked_at = now(), revoked_reason = "
				"'refresh_token_reuse' "
				"WHERE id = $1 AND revoked_at IS NULL",
				1, params));
	if (!r || db_commit() < 0) {
		http_reply_error(req, TH_EUNAVAILABLE, "database unavailable", NULL);
		return;
	}
	revoke_publish(strtoll(sid, NULL, 10));
	log_warn("audit: refresh token reused; session %s revoked", sid);
	http_reply_error(req, TH_EUNAUTHORIZED, "refresh token already used; session revoked",
			 NULL);
}

void refresh_handler(struct http_req *req)
{
	const char *text;
	char hex[crypto_hash_sha256_BYTES * 2 + 1], sid[24];
	const char *p1[] = {hex}, *p2[] = {sid};
	struct refresh next;
	struct db_res *r;
	struct json_object *user;
	int64_t uid;

	if (jh_string_or_400(req, req->json, "refresh_token", 1, 4096, JH_REQUIRED, &text) < 0)
		return;
	refresh_hash(text, hex, sizeof(hex));
	if (db_begin_or_reply(req) < 0)
		return;
	/* the row lock makes two racing refreshes of one token take turns: the
	 * second finds it used */
	r = db_exec_or_reply(req, DB_PRIMARY,
			     "UPDATE refresh_tokens SET used_at = now() "
			     "WHERE token_hash = decode($1, 'hex') AND used_at IS NULL "
			     "AND expires_at > now() RETURNING session_id",
			     1, p1);
	if (!r)
		return;
	if (db_res_rows(r) == 0) {
		r = db_exec_or_reply(req, DB_PRIMARY,
				     "SELECT session_id, used_at IS NOT NULL FROM refresh_tokens "
				     "WHERE token_hash = decode($1, 'hex')",
				     1, p1);
		if (!r)
			return;
		if (db_res_rows(r) == 1 && strcmp(db_res_get(r, 0, 1), "t") == 0) {
			snprintf(sid, sizeof(sid), "%s", db_res_get(r, 0, 0));
			refresh_reused(req, sid);
			return;
		}
		db_rollback();
		http_reply_error(req, TH_EUNAUTHORIZED, "invalid or expired refresh token", NULL);
		return;
	}
	snprintf(sid, sizeof(sid), "%s", db_res_get(r, 0, 0));
	r = db_exec_or_reply(req, DB_PRIMARY,
			     "UPDATE sessions s SET last_refreshed_at = now() FROM users u "
			     "WHERE s.id = $1 AND u.id = s.user_id AND s.revoked_at IS NULL "
			     "AND u.suspended_at IS NULL RETURNING " USER_COLS,
			     1, p2);
	if (!r)
		return;
	if (db_res_rows(r) != 1) {
		db_rollback();
		http_reply_error(req, TH_EUNAUTHORIZED, "session revoked", NULL);
		return;
	}
	uid = strtoll(db_res_get(r, 0, 0), NULL, 10);
	user = jh_own(req, user_json(r, 0, 0));
	refresh_new(&next);
	if (refresh_store(req, &next, sid) < 0)
		return;
	tokens_reply(req, 200, uid, strtoll(sid, NULL, 10), &next, user, 1);
}

void logout_handler(struct http_req *req)
{
	const char *text = NULL;
	char sid[24], uid[24], hex[crypto_hash_sha256_BYTES * 2 + 1];
	struct db_res *r;
	int i, n;

	if (req->body_len > 0) {
		if (jh_parse_body_or_400(req) < 0 ||
		    jh_string_or_400(req, req->json, "refresh_token", 1, 4096, 0, &text) < 0)
			return;
	}
	snprintf(sid, sizeof(sid), "%lld", (long long)req->session_id);
	snprintf(uid, sizeof(uid), "%lld", (long long)req->user_id);
	if (text)
		refresh_hash(text, hex, sizeof(hex));
	else
		hex[0] = '\0';
	{
		/* the caller's session, and the refresh token's session when it is
		 * another session of the same user */
		const char *params[] = {sid, uid, hex};

		r = db_exec_or_reply(req, DB_PRIMARY,
				     "UPDATE sessions s SET revoked_at = now(), revoked_reason = "
				     "'logout' "
				     "WHERE s.user_id = $2 AND s.revoked_at IS NULL AND (s.id = $1 "
				     "OR s.id = (SELECT session_id FROM refresh_tokens "
				     "WHERE $3 <> '' AND token_hash = decode($3, 'hex'))) "
				     "RETURNING s.id",
				     3, params);
	}
	if (!r)
		return;
	n = db_res_rows(r);
	for (i = 0; i < n; i++) {
		revoke_publish(strtoll(db_res_get(r, i, 0), NULL, 10));
		log_info("audit: session %s revoked by logout of user %s", db_res_get(r, i, 0),
			 uid);
	}
	http_reply_empty(req, 204);
}
