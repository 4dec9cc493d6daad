/* totp: a second factor for signing in (API.md v1.1 "Account lifecycle";
 * RFC 6238 codes from lib/totp, migration 0029).
 *
 *   POST /api/auth/totp/setup            {secret, otpauth_url}: a new secret,
 *                                        pending until confirmed (10 min:
 *                                        the interval in the enable query)
 *   POST /api/auth/totp/enable {code}    {recovery_codes}: ten single-use
 *                                        codes, shown once, stored hashed
 *   POST /api/auth/totp/disable {password, code}   204
 *   POST /api/auth/login {…, totp}       totp_check_login(): a code or an
 *                                        unused recovery code
 *
 * A code is used once: the step it matched must be later than the last
 * accepted one, moved in the same UPDATE that accepts it, so two requests
 * with one code cannot both pass.  Guesses cost budget: enable and disable
 * take the account's password-check budget, a wrong code at login counts as
 * a failed login (accounts.c). */
#include <json-c/json.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth.h"
#include "ids.h"
#include "jh.h"
#include "log.h"
#include "password.h"
#include "reply.h"
#include "seal.h"
#include "totp.h"

#define TOTP_ISSUER "Townhall"
#define TOTP_RECOVERY_N 10
#define TOTP_RECOVERY_LEN 10 /* base32 characters: 50 bits each */

/* The hex of SHA-256 of a recovery code as typed: lower case, without the
 * dashes and spaces people copy with it (at most 32 characters kept). */
static void recovery_hash(const char *code, char hex[65])
{
	unsigned char d[crypto_hash_sha256_BYTES];
	char norm[33];
	size_t n = 0;

	for (; *code && n + 1 < sizeof(norm); code++)
		if (*code != '-' && *code != ' ')
			norm[n++] = (char)(*code >= 'A' && *code <= 'Z' ? *code - 'A' + 'a'
									: *code);
	norm[n] = '\0';
	crypto_hash_sha256(d, (const unsigned char *)norm, n);
	sodium_bin2hex(hex, 65, d, sizeof(d));
}

/* "totp:<uid>": a sealed secret opens only in its own account's row */
static const char *secret_ad(char buf[32], int64_t uid)
{
	snprintf(buf, 32, "totp:%lld", (long long)uid);
	return buf;
}

/* uid's secret, as PostgreSQL's bytea text ("\\x<hex>" of a blob sealed
 * by secret_seal), into out (TOTP_SECRET_LEN).  A bare 20-byte value was
 * written before secrets were sealed and is still read; every secret set up
 * since is sealed.  0, or -1 (malformed, changed, or another row's). */
static int secret_open(int64_t uid, const char *bytea, unsigned char *out)
{
	unsigned char blob[TOTP_SECRET_LEN + SEAL_OVERHEAD];
	char ad[32];
	size_t len = 0;

	if (!bytea || strncmp(bytea, "\\x", 2) != 0 ||
	    sodium_hex2bin(blob, sizeof(blob), bytea + 2, strlen(bytea + 2), NULL, &len, NULL) != 0)
		return -1;
	if (len == TOTP_SECRET_LEN) {
		memcpy(out, blob, len);
		return 0;
	}
	if (seal_open(secret_ad(ad, uid), blob, len, out, TOTP_SECRET_LEN) != TOTP_SECRET_LEN)
		return -1;
	return 0;
}

/* secret sealed for uid, as hex (for decode($n, 'hex')) into hex; 0 or -1. */
static int secret_seal(int64_t uid, const unsigned char *secret,
		       char hex[(TOTP_SECRET_LEN + SEAL_OVERHEAD) * 2 + 1])
{
	unsigned char blob[TOTP_SECRET_LEN + SEAL_OVERHEAD];
	char ad[32];
	ssize_t n;

	n = seal_close(secret_ad(ad, uid), secret, TOTP_SECRET_LEN, blob, sizeof(blob));
	if (n != (ssize_t)sizeof(blob))
		return -1;
	sodium_bin2hex(hex, (TOTP_SECRET_LEN + SEAL_OVERHEAD) * 2 + 1, blob, sizeof(blob));
	return 0;
}

/* code against uid's enabled factor: a 6-digit code whose step is later than
 * the last accepted one, or an unused recovery code; accepting it uses it.
 * 1 accepted, 0 not, -1 replied (database). */
static int factor_check(struct http_req *req, int64_t uid, const char *code)
{
	char id[24], st[24], hex[65];
	unsigned char secret[TOTP_SECRET_LEN];
	uint64_t step = 0;
	struct db_res *r;

	ids_text(id, uid);
	if (strlen(code) == TOTP_DIGITS) {
		const char *p1[] = {id};

		r = db_exec_or_reply(req, DB_PRIMARY,
				     "SELECT totp_secret FROM users WHERE id = $1 AND totp_secret "
				     "IS "
				     "NOT NULL",
				     1, p1);
		if (!r)
			return -1;
		if (db_res_rows(r) != 1 || secret_open(uid, db_res_get(r, 0, 0), secret) < 0 ||
		    !totp_check(secret, sizeof(secret), code, (uint64_t)time(NULL), &step))
			return 0;
		sodium_memzero(secret, sizeof(secret));
		snprintf(st, sizeof(st), "%llu", (unsigned long long)step);
		{
			const char *p2[] = {id, st};

			r = db_exec_or_reply(req, DB_PRIMARY,
					     "UPDATE users SET totp_last_step = $2 WHERE id = $1 "
					     "AND "
					     "(totp_last_step IS NULL OR totp_last_step < $2) "
					     "RETURNING 1",
					     2, p2);
		}
		return r ? db_res_rows(r) == 1 : -1;
	}
	recovery_hash(code, hex);
	{
		const char *p3[] = {id, hex};

		r = db_exec_or_reply(req, DB_PRIMARY,
				     "UPDATE totp_recovery_codes SET used_at = now() WHERE user_id "
				     "= "
				     "$1 AND code_hash = decode($2, 'hex') AND used_at IS NULL "
				     "RETURNING 1",
				     2, p3);
	}
	return r ? db_res_rows(r) == 1 : -1;
}

int totp_check_login(struct http_req *req, int64_t uid, const char *code)
{
	int ok;

	if (!code) {
		http_reply_error(req, TH_ETOTP, "this account asks for a one-time code (totp)",
				 "totp");
		return -1;
	}
	ok = factor_check(req, uid, code);
	if (ok < 0)
		return -1;
	if (!ok) {
		log_info("audit: user %lld: a wrong or used one-time code at login",
			 (long long)uid);
		return 0;
	}
	return 1;
}

void totp_setup_handler(struct http_req *req)
{
	unsigned char secret[TOTP_SECRET_LEN];
	char b32[TOTP_B32_SIZE(TOTP_SECRET_LEN)], hex[(TOTP_SECRET_LEN + SEAL_OVERHEAD) * 2 + 1];
	char id[24], *url;
	struct json_object *o;
	struct db_res *r;
	int sealed;

	randombytes_buf(secret, sizeof(secret));
	totp_b32(secret, sizeof(secret), b32);
	sealed = secret_seal(req->user_id, secret, hex);
	sodium_memzero(secret, sizeof(secret));
	if (sealed < 0) {
		http_reply_error(req, TH_EINTERNAL, "cannot seal the secret", NULL);
		return;
	}
	{
		const char *params[] = {ids_text(id, req->user_id), hex};

		r = db_exec_or_reply(req, DB_PRIMARY,
				     "UPDATE users SET totp_pending = decode($2, 'hex'), "
				     "totp_pending_at = now() WHERE id = $1 AND totp_secret IS "
				     "NULL "
				     "RETURNING username",
				     2, params);
	}
	if (!r)
		return;
	if (db_res_rows(r) != 1) {
		http_reply_error(req, TH_ECONFLICT,
				 "two-factor sign-in is on already (disable it first)", NULL);
		return;
	}
	/* usernames are [a-z0-9_]: nothing in the URL needs escaping */
	url = arena_printf(req->arena,
			   "otpauth://totp/" TOTP_ISSUER ":%s?secret=%s&issuer=" TOTP_ISSUER
			   "&algorithm=SHA1&digits=%d&period=%d",
			   db_res_get(r, 0, 0), b32, TOTP_DIGITS, TOTP_PERIOD_S);
	o = jh_object(req);
	if (!url || !o) {
		http_reply_error(req, TH_EINTERNAL, "out of memory", NULL);
		return;
	}
	json_object_object_add(o, "secret", json_object_new_string(b32));
	json_object_object_add(o, "otpauth_url", json_object_new_string(url));
	http_reply_json(req, 200, json_object_get(o));
}

/* Ten recovery codes into codes (shown once) and their hashes stored, in
 * the caller's transaction.  0, or -1 replied. */
static int recovery_make(struct http_req *req, struct json_object *codes)
{
	char id[24];

	ids_text(id, req->user_id);
	for (int i = 0; i < TOTP_RECOVERY_N; i++) {
		unsigned char rnd[8];
		char b32[TOTP_B32_SIZE(8)], code[TOTP_RECOVERY_LEN + 2], hex[65];
		const char *params[] = {id, hex};

		randombytes_buf(rnd, sizeof(rnd));
		totp_b32(rnd, sizeof(rnd), b32);
		/* xxxxx-xxxxx, lower case */
		for (int k = 0, o = 0; k < TOTP_RECOVERY_LEN; k++) {
			if (k == TOTP_RECOVERY_LEN / 2)
				code[o++] = '-';
			code[o++] = (char)(b32[k] >= 'A' && b32[k] <= 'Z' ? b32[k] - 'A' + 'a'
									  : b32[k]);
			code[o] = '\0';
		}
		recovery_hash(code, hex);
		if (!db_exec_or_reply(req, DB_PRIMARY,
				      "INSERT INTO totp_recovery_codes (user_id, code_hash) "
				      "VALUES ($1, decode($2, 'hex'))",
				      2, params))
			return -1;
		json_object_array_add(codes, json_object_new_string(code));
	}
	return 0;
}

void totp_enable_handler(struct http_req *req)
{
	const char *code;
	unsigned char secret[TOTP_SECRET_LEN];
	char id[24], st[24];
	uint64_t step = 0;
	struct db_res *r;
	struct json_object *o, *codes;
	int ok;

	if (jh_string_or_400(req, req->json, "code", 6, 6, JH_REQUIRED, &code) < 0 ||
	    acct_pwcheck_budget_or_reply(req) < 0)
		return;
	{
		const char *params[] = {ids_text(id, req->user_id)};

		r = db_exec_or_reply(req, DB_PRIMARY,
				     "SELECT totp_pending FROM users WHERE id = $1 AND totp_secret "
				     "IS NULL AND totp_pending IS NOT NULL AND totp_pending_at > "
				     "now() - interval '600 seconds'",
				     1, params);
	}
	if (!r)
		return;
	if (db_res_rows(r) != 1 || secret_open(req->user_id, db_res_get(r, 0, 0), secret) < 0) {
		http_reply_error(req, TH_ECONFLICT,
				 "no two-factor set-up is waiting (POST /api/auth/totp/setup "
				 "first)",
				 NULL);
		return;
	}
	ok = totp_check(secret, sizeof(secret), code, (uint64_t)time(NULL), &step);
	sodium_memzero(secret, sizeof(secret));
	if (!ok) {
		http_reply_error(req, TH_EVALIDATION, "the code does not match the secret", "code");
		return;
	}
	snprintf(st, sizeof(st), "%llu", (unsigned long long)step);
	o = jh_object(req);
	codes = jh_array(req);
	if (!o || !codes) {
		http_reply_error(req, TH_EINTERNAL, "out of memory", NULL);
		return;
	}
	if (db_begin_or_reply(req) < 0)
		return;
	{
		const char *params[] = {id, st, db_res_get(r, 0, 0)};

		/* the pending secret read above, not one set up since */
		r = db_exec_or_reply(req, DB_PRIMARY,
				     "UPDATE users SET totp_secret = totp_pending, totp_enabled_at "
				     "= "
				     "now(), totp_last_step = $2, totp_pending = NULL, "
				     "totp_pending_at = NULL WHERE id = $1 AND totp_secret IS NULL "
				     "AND totp_pending = $3::bytea",
				     3, params);
	}
	if (!r || db_one_row_changed_or_404(req, r, "no two-factor set-up is waiting") < 0)
		return;
	{
		const char *params[] = {id};

		if (!db_exec_or_reply(req, DB_PRIMARY,
				      "DELETE FROM totp_recovery_codes WHERE user_id = $1", 1,
				      params))
			return;
	}
	if (recovery_make(req, codes) < 0 || db_commit_or_reply(req) < 0)
		return;
	me_cache_forget(req->user_id);
	log_info("audit: user %lld turned two-factor sign-in on", (long long)req->user_id);
	json_object_object_add(o, "recovery_codes", json_object_get(codes));
	http_reply_json(req, 200, json_object_get(o));
}

void totp_disable_handler(struct http_req *req)
{
	const char *password, *code;
	char id[24];
	struct db_res *r;
	int ok;

	if (jh_string_or_400(req, req->json, "password", 1, 128, JH_REQUIRED, &password) < 0 ||
	    jh_string_or_400(req, req->json, "code", 6, 32, JH_REQUIRED, &code) < 0 ||
	    acct_pwcheck_budget_or_reply(req) < 0)
		return;
	{
		const char *params[] = {ids_text(id, req->user_id)};

		r = db_exec_or_reply(req, DB_PRIMARY,
				     "SELECT password_hash FROM users WHERE id = $1 AND "
				     "totp_secret "
				     "IS NOT NULL",
				     1, params);
	}
	if (!r)
		return;
	if (db_res_rows(r) != 1) {
		http_reply_error(req, TH_ECONFLICT, "two-factor sign-in is off", NULL);
		return;
	}
	ok = password_verify(db_res_get(r, 0, 0), password);
	if (ok == PASSWORD_BUSY) {
		http_reply_error(req, TH_EUNAVAILABLE, "too many password checks at once", NULL);
		return;
	}
	if (!ok) {
		http_reply_error(req, TH_EUNAUTHORIZED, "wrong password", "password");
		return;
	}
	ok = factor_check(req, req->user_id, code);
	if (ok < 0)
		return;
	if (!ok) {
		http_reply_error(req, TH_EUNAUTHORIZED, "wrong or used code", "code");
		return;
	}
	if (db_begin_or_reply(req) < 0)
		return;
	{
		const char *params[] = {id};

		if (!db_exec_or_reply(req, DB_PRIMARY,
				      "UPDATE users SET totp_secret = NULL, totp_enabled_at = "
				      "NULL, "
				      "totp_last_step = NULL, totp_pending = NULL, totp_pending_at "
				      "= NULL WHERE id = $1",
				      1, params) ||
		    !db_exec_or_reply(req, DB_PRIMARY,
				      "DELETE FROM totp_recovery_codes WHERE user_id = $1", 1,
				      params))
			return;
	}
	if (db_commit_or_reply(req) < 0)
		return;
	me_cache_forget(req->user_id);
	log_info("audit: user %lld turned two-factor sign-in off", (long long)req->user_id);
	http_reply_empty(req, 204);
}
