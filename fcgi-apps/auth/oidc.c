/* oidc: GET /api/auth/oidc/providers, /:provider/start, /:provider/callback.
 *
 * The flow is the authorization code flow with PKCE S256, state and nonce.
 * /start keeps what the callback needs in oidc_states (migration 0031: why
 * PostgreSQL), keyed by the SHA-256 of the state and bound to the browser by
 * a cookie (th_oidc, HttpOnly, SameSite=Lax, path /api/auth/oidc/) whose
 * SHA-256 is stored beside it: a callback with a state started by another
 * browser finds no row.  The row is taken (DELETE ... RETURNING) before
 * anything else, so a state is used once whatever follows.
 *
 * The redirect URI is a page of ours (the demo page): the provider sends the
 * browser there with code and state, and the page calls /callback with
 * fetch; the callback answers the body of a login.  An account with TOTP
 * on still owes its one-time code (a provider's word on MFA is not taken):
 * the callback then answers 401 totp_required and keeps the row, bound to
 * the same browser, for 5 minutes and one try of /callback?state=&totp=. */
#include <json-c/json.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "config.h"
#include "db.h"
#include "ids.h"
#include "jh.h"
#include "log.h"
#include "metrics.h"
#include "oidc.h"
#include "reply.h"
#include "user.h"

#define OIDC_RAND_BYTES 32
#define OIDC_TEXT 64 /* base64url of 32 bytes is 43 chars */
#define OIDC_COOKIE "th_oidc"
#define OIDC_TOTP_TTL_S 300
#define OIDC_USERNAME_TRIES 6
/* 401 when the account's credentials changed (a reset, a password change)
 * between the provider's sign-in and its session */
#define OIDC_STALE "the account's credentials changed during the sign-in; sign in again"

struct oidc_limits {
	long state_ttl_s, max, window_s;
};
static struct oidc_limits lim;
/* sign-ins done; refused (code or ID token); providers not answering */
static int c_logins = -1, c_refused = -1, c_unavailable = -1;

int oidc_init(void)
{
	lim.state_ttl_s = (long)cfg_int("TH_OIDC_STATE_TTL", 600, 30, 3600);
	lim.max = (long)cfg_int("TH_RL_OIDC_MAX", 60, 1, 1000000);
	lim.window_s = (long)cfg_int("TH_RL_OIDC_WINDOW", 600, 1, 86400);
	c_logins = metrics_counter("oidc_logins_total");
	c_refused = metrics_counter("oidc_refused_total");
	c_unavailable = metrics_counter("oidc_provider_unavailable_total");
	return oidcp_init();
}

static void rand_text(char out[OIDC_TEXT])
{
	unsigned char rnd[OIDC_RAND_BYTES];

	randombytes_buf(rnd, sizeof(rnd));
	sodium_bin2base64(out, OIDC_TEXT, rnd, sizeof(rnd),
			  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

static void sha256_hex(const char *text, char hex[65])
{
	unsigned char d[crypto_hash_sha256_BYTES];

	crypto_hash_sha256(d, (const unsigned char *)text, strlen(text));
	sodium_bin2hex(hex, 65, d, sizeof(d));
}

/* The th_oidc cookie of the request when well-formed (43 base64url
 * characters) into out; 0, or -1 when absent. */
static int browser_cookie(const struct http_req *req, char out[OIDC_TEXT])
{
	const char *h = http_header(req, "Cookie"), *p = h;
	size_t n;

	while (p && (p = strstr(p, OIDC_COOKIE "=")) != NULL) {
		if (p == h || p[-1] == ' ' || p[-1] == ';') {
			p += sizeof(OIDC_COOKIE);
			n = strspn(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz01234567"
				      "89-_");
			if (n != 43)
				return -1;
			memcpy(out, p, n);
			out[n] = '\0';
			return 0;
		}
		p++;
	}
	return -1;
}

/* The provider of the path, or NULL with 404 replied. */
static struct oidc_provider *provider_or_404(struct http_req *req)
{
	const char *name = http_param(req, "provider");
	struct oidc_provider *p = name ? oidcp_find(name) : NULL;

	if (!p)
		http_reply_error(req, TH_ENOTFOUND, "no such provider", NULL);
	return p;
}

/* 503: the provider does not answer usably (oidcprov.c); asked again after
 * OIDC_RETRY_MS at the earliest. */
static void unavailable_reply(struct http_req *req)
{
	http_reply_error(req, TH_EUNAVAILABLE, "the identity provider is unavailable", NULL);
	http_add_header(req, "Retry-After", "5");
}

void oidc_providers_handler(struct http_req *req)
{
	struct json_object *o = json_object_new_object(), *items = json_object_new_array();

	for (int i = 0; i < oidcp_count(); i++) {
		const struct oidc_provider *p = oidcp_at(i);
		struct json_object *it = json_object_new_object();

		json_object_object_add(it, "name", json_object_new_string(p->name));
		json_object_object_add(it, "label", json_object_new_string(p->label));
		json_object_array_add(items, it);
	}
	json_object_object_add(o, "items", items);
	json_object_object_add(o, "next_cursor", NULL);
	http_reply_json(req, 200, o);
}

/* s percent-encoded (RFC 3986 unreserved characters kept) into the arena,
 * or NULL. */
static char *url_escape(struct arena *a, const char *s)
{
	static const char hx[] = "0123456789ABCDEF";
	char *out = arena_alloc(a, strlen(s) * 3 + 1), *o = out;

	if (!out)
		return NULL;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '.' || c == '_' || c == '~') {
			*o++ = (char)c;
		} else {
			*o++ = '%';
			*o++ = hx[c >> 4];
			*o++ = hx[c & 15];
		}
	}
	*o = '\0';
	return out;
}

/* The authorization URL into the arena, or NULL when it does not fit a
 * header. */
static char *authorize_location(struct http_req *req, const struct oidc_provider *p,
				const char *redirect_uri, const char *state, const char *nonce,
				const char *challenge)
{
	char *cid = url_escape(req->arena, p->client_id),
	     *ru = url_escape(req->arena, redirect_uri), *loc;
	size_t size = HTTP_HEADER_VALUE_MAX;
	int n;

	loc = cid && ru ? arena_alloc(req->arena, size) : NULL;
	if (!loc)
		return NULL;
	n = snprintf(loc, size,
		     "%s%sresponse_type=code&scope=openid%%20email%%20profile&client_id=%s"
		     "&redirect_uri=%s&state=%s&nonce=%s&code_challenge=%s"
		     "&code_challenge_method=S256",
		     p->authorize_url, strchr(p->authorize_url, '?') ? "&" : "?", cid, ru, state,
		     nonce, challenge);
	return n > 0 && (size_t)n < size ? loc : NULL;
}

void oidc_start_handler(struct http_req *req)
{
	struct oidc_provider *p = provider_or_404(req);
	const char *redirect_uri;
	char state[OIDC_TEXT], nonce[OIDC_TEXT], verifier[OIDC_TEXT], challenge[OIDC_TEXT];
	char browser[OIDC_TEXT], shash[65], bhash[65], ttl[24], cookie[160], *loc;
	unsigned char d[crypto_hash_sha256_BYTES];
	enum th_err e;

	if (!p)
		return;
	redirect_uri = http_query(req, "redirect_uri");
	if (!redirect_uri || !oidcp_redirect_allowed(p, redirect_uri)) {
		/* an open redirect would hand the code to whoever asks */
		http_reply_error(req, TH_EVALIDATION,
				 "redirect_uri is not one of the provider's redirect URIs",
				 "redirect_uri");
		return;
	}
	if (acct_budget_or_reply(req, "oidc:ip", req->client_addr, lim.max, lim.window_s) < 0)
		return;
	e = oidcp_discover(p);
	if (e != TH_OK) {
		metrics_add(c_unavailable, 1);
		unavailable_reply(req);
		return;
	}
	rand_text(state);
	rand_text(nonce);
	rand_text(verifier);
	crypto_hash_sha256(d, (const unsigned char *)verifier, strlen(verifier));
	sodium_bin2base64(challenge, sizeof(challenge), d, sizeof(d),
			  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	if (browser_cookie(req, browser) < 0)
		rand_text(browser);
	sha256_hex(state, shash);
	sha256_hex(browser, bhash);
	snprintf(ttl, sizeof(ttl), "%ld", lim.state_ttl_s);
	loc = authorize_location(req, p, redirect_uri, state, nonce, challenge);
	if (!loc) {
		http_reply_error(req, TH_EINTERNAL, "the authorization URL is too long", NULL);
		return;
	}
	{
		const char *params[] = {shash, bhash, p->name, nonce, verifier, redirect_uri, ttl};
		struct db_res *r;

		/* the expired rows of earlier logins go first, a bounded few */
		r = db_exec_or_reply(req, DB_PRIMARY,
				     "WITH old AS (DELETE FROM oidc_states WHERE state_hash IN "
				     "(SELECT state_hash FROM oidc_states "
				     "WHERE expires_at < now() LIMIT 100)) "
				     "INSERT INTO oidc_states (state_hash, browser_hash, provider, "
				     "nonce, code_verifier, redirect_uri, expires_at) "
				     "VALUES (decode($1, 'hex'), decode($2, 'hex'), $3, $4, $5, "
				     "$6, "
				     "now() + $7::bigint * interval '1 second')",
				     7, params);
		if (!r)
			return;
	}
	snprintf(cookie, sizeof(cookie),
		 OIDC_COOKIE "=%s; Path=/api/auth/oidc/; Max-Age=%ld; HttpOnly; SameSite=Lax%s",
		 browser, lim.state_ttl_s,
		 strncmp(redirect_uri, "https:", 6) == 0 ? "; Secure" : "");
	http_reply_empty(req, 302);
	http_add_header(req, "Location", loc);
	http_add_header(req, "Set-Cookie", cookie);
	http_add_header(req, "Cache-Control", "no-store");
}

/* A free username from the claims: preferred_username, else the e-mail's
 * local part, mapped to a-z 0-9 _, 3 to 32 long; try > 0 appends a random
 * suffix. */
static void username_candidate(const char *pref, const char *email, int try, char out[33])
{
	const char *src = pref && *pref ? pref : email;
	size_t n = 0;

	for (; src && *src && *src != '@' && n < 24; src++) {
		char c = *src;

		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')
			out[n++] = c;
		else if (n > 0 && out[n - 1] != '_')
			out[n++] = '_';
	}
	while (n < 3) {
		out[n] = n == 0 ? 'u' : '_';
		n++;
	}
	out[n] = '\0';
	if (try > 0)
		snprintf(out + n, 33 - n, "_%u",
			 (unsigned)randombytes_uniform(try < 3 ? 10000 : 1000000000));
}

/* A display name from the claims (1 to 64 characters, no control bytes),
 * else the username. */
static const char *display_name(struct json_object *claims, const char *username)
{
	const char *name = idt_claim_str(claims, "name");
	long n = name ? jh_utf8_len(name, strlen(name)) : -1;

	/* the rules of a display name given at registration (JH_NAME) */
	if (n < 1 || n > 64 || jh_has_control(name, strlen(name), false) ||
	    jh_has_invisible(name, strlen(name)))
		return username;
	return name;
}

/* an account row: USER_COLS, suspended, TOTP on, and the credential epoch
 * (read with the account: the session starts only while it is unchanged) */
#define ACCOUNT_COLS                                                                    \
	"SELECT " USER_COLS ", u.suspended_at IS NOT NULL, u.totp_secret IS NOT NULL, " \
	"u.credential_epoch "
#define ACCOUNT_EPOCH (USER_NCOLS + 2)

/* r when it holds the one account row sought (logged as `how`), or when it
 * failed (NULL, replied); else NULL with *next set: look further. */
static struct db_res *found(struct db_res *r, const struct oidc_provider *p, const char *how,
			    int *next)
{
	*next = r && db_res_rows(r) != 1;
	if (r && !*next)
		log_info("audit: user %s %s by %s login", db_res_get(r, 0, 0), how, p->name);
	return *next ? NULL : r;
}

/* A new account for the claims, its address verified by the provider,
 * linked, with a free username (a few tries: preferred_username or the
 * e-mail's local part, then with a number).  The row, or NULL replied (409:
 * the address is taken). */
static struct db_res *account_create(struct http_req *req, const struct oidc_provider *p,
				     struct json_object *claims, const char *email)
{
	const char *sub = idt_claim_str(claims, "sub");
	char uname[33];
	struct db_res *r;
	int next = 1;

	for (int t = 0; t < OIDC_USERNAME_TRIES; t++) {
		const char *params[] = {p->name, sub, email, uname, NULL};
		const char *p1[] = {email};

		username_candidate(idt_claim_str(claims, "preferred_username"), email, t, uname);
		params[4] = display_name(claims, uname);
		/* ON CONFLICT DO NOTHING: a taken name or address leaves the
		 * transaction usable, and the next statement tells which */
		r = db_exec_or_reply(req, DB_PRIMARY,
				     "WITH n AS (INSERT INTO users (email, username, display_name, "
				     "email_verified_at) VALUES ($3, $4, $5, now()) "
				     "ON CONFLICT DO NOTHING "
				     "RETURNING id, username, display_name, created_at, "
				     "credential_epoch), "
				     "l AS (INSERT INTO user_identities "
				     "(provider, subject, user_id, address_proven) "
				     "SELECT $1, $2, id, true FROM n) "
				     "SELECT " USER_COLS ", false, false, u.credential_epoch "
				     "FROM n AS u",
				     5, params);
		r = found(r, p, "created", &next);
		if (!next)
			return r;
		r = db_exec_or_reply(req, DB_PRIMARY, "SELECT 1 FROM users WHERE email = $1", 1,
				     p1);
		if (!r)
			return NULL;
		if (db_res_rows(r) > 0) {
			db_rollback();
			http_reply_error(req, TH_ECONFLICT,
					 "an account with this e-mail address exists: sign in with "
					 "its password (and verify the address) to link it",
					 NULL);
			return NULL;
		}
	}
	db_rollback();
	http_reply_error(req, TH_EUNAVAILABLE, "no free username found; try again", NULL);
	return NULL;
}

/* Inside the caller's transaction: the account of (provider, sub), else the
 * account with the same address verified on both sides (linked), else a new
 * account (linked) when the provider verified the address.  The row
 * (ACCOUNT_COLS) or NULL replied and rolled back.
 *
 * An address the provider does not vouch for makes no account: the account
 * would hold an address nobody proved, with the identity as its credential,
 * and the address's owner, refused at registration, would take it over by a
 * reset and find someone else's identity signing in to it.  Such users
 * register with a password (and prove the address by mail). */
static struct db_res *account_for(struct http_req *req, const struct oidc_provider *p,
				  struct json_object *claims)
{
	const char *sub = idt_claim_str(claims, "sub"), *email = idt_claim_str(claims, "email");
	const char *params[] = {p->name, sub, email};
	int verified = idt_claim_true(claims, "email_verified"), next;
	struct db_res *r;

	r = db_exec_or_reply(req, DB_PRIMARY,
			     ACCOUNT_COLS "FROM users u JOIN user_identities i ON i.user_id = u.id "
					  "WHERE i.provider = $1 AND i.subject = $2",
			     2, params);
	r = found(r, p, "reached", &next);
	if (!next)
		return r;
	if (!email || strlen(email) > 254 || !acct_addr_valid(email)) {
		db_rollback();
		http_reply_error(req, TH_EFORBIDDEN,
				 "the provider gave no usable e-mail address for a new account",
				 NULL);
		return NULL;
	}
	if (!verified) {
		db_rollback();
		http_reply_error(req, TH_EFORBIDDEN,
				 "the provider does not say the e-mail address is verified "
				 "(email_verified): no account is made or linked with it; "
				 "register with a password",
				 NULL);
		return NULL;
	}
	/* both sides vouch for the address: the same person */
	r = db_exec_or_reply(req, DB_PRIMARY,
			     "WITH m AS (SELECT id FROM users WHERE email = $3 "
			     "AND email_verified_at IS NOT NULL), "
			     "l AS (INSERT INTO user_identities (provider, subject, "
			     "user_id, address_proven) "
			     "SELECT $1, $2, id, true FROM m) " ACCOUNT_COLS
			     "FROM users u JOIN m ON m.id = u.id",
			     3, params);
	r = found(r, p, "linked by verified e-mail", &next);
	if (!next)
		return r;
	return account_create(req, p, claims, email);
}

/* Keeps the state row for the one-time code: same state and browser, the
 * user known and the credential epoch the sign-in read (the second step
 * starts no session after a reset that came between), 5 minutes.  In the
 * caller's transaction, which it commits; then replies 401 totp_required. */
static void totp_due(struct http_req *req, const struct oidc_provider *p, const char *shash,
		     const char *bhash, const char *uid, const char *epoch)
{
	char ttl[24];
	const char *params[] = {shash, bhash, p->name, uid, ttl, epoch};

	snprintf(ttl, sizeof(ttl), "%d", OIDC_TOTP_TTL_S);
	if (!db_exec_or_reply(req, DB_PRIMARY,
			      "INSERT INTO oidc_states (state_hash, browser_hash, provider, nonce, "
			      "code_verifier, redirect_uri, user_id, expires_at, "
			      "credential_epoch) VALUES "
			      "(decode($1, 'hex'), decode($2, 'hex'), $3, '', '', '', $4, now() + "
			      "$5::bigint * interval '1 second', $6::bigint)",
			      6, params) ||
	    db_commit_or_reply(req) < 0)
		return;
	totp_check_login(req, 0, NULL);
}

/* The provider's half: code for ID token, verified.  Claims (the request's)
 * or NULL replied. */
static struct json_object *provider_login(struct http_req *req, struct oidc_provider *p,
					  const char *code, struct db_res *st)
{
	char *id_token = arena_alloc(req->arena, OIDC_ID_TOKEN_MAX + 1);
	struct json_object *claims = NULL;
	enum idt_result why = IDT_OK;
	enum th_err e;

	if (!id_token) {
		http_reply_error(req, TH_EINTERNAL, "out of memory", NULL);
		return NULL;
	}
	e = oidcp_discover(p);
	if (e == TH_OK)
		e = oidcp_token(p, code, db_res_get(st, 0, 1), db_res_get(st, 0, 2), id_token,
				OIDC_ID_TOKEN_MAX + 1);
	if (e == TH_OK)
		e = oidcp_verify(p, id_token, db_res_get(st, 0, 0), &claims, &why);
	if (e == TH_EUNAUTHORIZED) {
		metrics_add(c_refused, 1);
		log_info("oidc: %s login refused: %s", p->name,
			 why == IDT_OK ? "code refused" : idt_strerror(why));
		http_reply_error(req, e,
				 why == IDT_OK ? "the provider refused the code"
					       : idt_strerror(why),
				 NULL);
		return NULL;
	}
	if (e != TH_OK) {
		metrics_add(c_unavailable, 1);
		unavailable_reply(req);
		return NULL;
	}
	return jh_own(req, claims);
}

/* The second step of a login whose account has TOTP on: the one-time code
 * for the user the state row names (already taken), whose credential epoch
 * the first step read (NULL: a row kept before migration 0045, no
 * session). */
static void totp_step(struct http_req *req, int64_t uid, const char *epoch, const char *totp)
{
	char id[24];
	const char *params[] = {ids_text(id, uid)};
	struct db_res *r;
	int ok = totp_check_login(req, uid, totp && *totp ? totp : NULL);

	if (ok < 0)
		return;
	if (!ok) {
		http_reply_error(req, TH_EUNAUTHORIZED, "wrong or used one-time code", "totp");
		return;
	}
	r = db_exec_or_reply(req, DB_PRIMARY,
			     "SELECT " USER_COLS ", u.suspended_at IS NOT NULL FROM users u "
			     "WHERE u.id = $1",
			     1, params);
	if (!r)
		return;
	if (db_res_rows(r) != 1 || db_res_get(r, 0, USER_NCOLS)[0] == 't') {
		http_reply_error(req, TH_ESUSPENDED, NULL, NULL);
		return;
	}
	metrics_add(c_logins, 1);
	session_start_reply(req, 200, uid, epoch, OIDC_STALE, jh_own(req, user_json(r, 0, 0)), 0);
}

void oidc_callback_handler(struct http_req *req)
{
	struct oidc_provider *p = provider_or_404(req);
	const char *state = http_query(req, "state"), *code = http_query(req, "code"),
		   *totp = http_query(req, "totp");
	char browser[OIDC_TEXT], shash[65], bhash[65];
	struct db_res *st, *r;
	struct json_object *claims;
	int64_t uid;

	if (!p)
		return;
	if (!state || !*state || strlen(state) > 128) {
		http_reply_error(req, TH_EVALIDATION, "state is required", "state");
		return;
	}
	if ((!code || !*code || strlen(code) > 2048) && (!totp || !*totp)) {
		/* checked before the state is taken: a bad call uses nothing up */
		http_reply_error(req, TH_EVALIDATION,
				 "code (or, after totp_required, totp) is required", "code");
		return;
	}
	if (acct_budget_or_reply(req, "oidc:ip", req->client_addr, lim.max, lim.window_s) < 0)
		return;
	sha256_hex(state, shash);
	if (browser_cookie(req, browser) < 0)
		browser[0] = '\0'; /* hashes to nothing stored */
	sha256_hex(browser, bhash);
	{
		const char *params[] = {shash, bhash, p->name, code && *code ? "code" : "totp"};

		/* taken once, committed at once (no transaction around the
		 * provider's round trips): whatever follows, a second callback
		 * with the same state finds nothing.  A call with a code takes a
		 * row of /start, one with a code of ours a row of totp_due() */
		st = db_exec_or_reply(req, DB_PRIMARY,
				      "DELETE FROM oidc_states WHERE state_hash = decode($1, "
				      "'hex') "
				      "AND browser_hash = decode($2, 'hex') AND provider = $3 "
				      "AND (user_id IS NULL) = ($4 = 'code') AND expires_at > "
				      "now() "
				      "RETURNING nonce, code_verifier, redirect_uri, user_id, "
				      "credential_epoch",
				      4, params);
	}
	if (!st)
		return;
	if (db_res_rows(st) != 1) {
		http_reply_error(req, TH_EVALIDATION,
				 "unknown, expired or used state, or another browser's", "state");
		return;
	}
	if (!db_res_isnull(st, 0, 3)) {
		totp_step(req, strtoll(db_res_get(st, 0, 3), NULL, 10),
			  db_res_isnull(st, 0, 4) ? NULL : db_res_get(st, 0, 4), totp);
		return;
	}
	claims = provider_login(req, p, code, st);
	if (!claims || db_begin_or_reply(req) < 0)
		return;
	r = account_for(req, p, claims);
	if (!r)
		return;
	uid = strtoll(db_res_get(r, 0, 0), NULL, 10);
	if (db_res_get(r, 0, USER_NCOLS)[0] == 't') {
		db_rollback();
		http_reply_error(req, TH_ESUSPENDED, NULL, NULL);
		return;
	}
	if (db_res_get(r, 0, USER_NCOLS + 1)[0] == 't') {
		totp_due(req, p, shash, bhash, db_res_get(r, 0, 0),
			 db_res_get(r, 0, ACCOUNT_EPOCH));
		return;
	}
	metrics_add(c_logins, 1);
	session_start_reply(req, 200, uid, db_res_get(r, 0, ACCOUNT_EPOCH), OIDC_STALE,
			    jh_own(req, user_json(r, 0, 0)), 1);
}
