/* accounts: register, login, me. */
#include <ctype.h>
#include <json-c/json.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth.h"
#include "cache.h"
#include "config.h"
#include "db.h"
#include "idcache.h"
#include "jh.h"
#include "log.h"
#include "mail.h"
#include "metrics.h"
#include "mono.h"
#include "password.h"
#include "ratelimit.h"
#include "reply.h"
#include "user.h"

struct auth_limits auth_limits;
/* passwords evaluated at login, and those found wrong (tests read them:
 * how many of N parallel attempts reached the hash) */
static int c_checks = -1, c_failures = -1;

int accounts_init(void)
{
	auth_limits.login_user_max = (long)cfg_int("TH_RL_LOGIN_USER_MAX", 5, 1, 1000000);
	auth_limits.login_ip_max = (long)cfg_int("TH_RL_LOGIN_IP_MAX", 20, 1, 1000000);
	auth_limits.login_window_s = (long)cfg_int("TH_RL_LOGIN_WINDOW", 900, 1, 86400);
	auth_limits.register_max = (long)cfg_int("TH_RL_REGISTER_MAX", 10, 1, 1000000);
	auth_limits.register_window_s = (long)cfg_int("TH_RL_REGISTER_WINDOW", 3600, 1, 86400);
	if (password_init() < 0)
		return -1;
	c_checks = metrics_counter("login_password_checks_total");
	c_failures = metrics_counter("login_password_failures_total");
	/* hashes beyond one per core only evict each other from the caches */
	return password_limit_init(cfg_str("TH_VAR_DIR", NULL));
}

static int username_valid(const char *s)
{
	size_t n = strlen(s);

	if (n < 3 || n > 32)
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
			return 0;
	return 1;
}

/* Deliberately loose (the only real check of an address is mail reaching
 * it): one '@', something on both sides, a dot in the domain, no spaces. */
static int email_valid(const char *s)
{
	const char *at = strchr(s, '@');

	if (!at || at == s || strchr(at + 1, '@') || !strchr(at + 1, '.') || at[1] == '.' ||
	    s[strlen(s) - 1] == '.')
		return 0;
	for (; *s; s++)
		if (isspace((unsigned char)*s))
			return 0;
	return 1;
}

void register_handler(struct http_req *req)
{
	const char *email, *username, *password, *display;
	char key[128], hash[PASSWORD_HASH_MAX];
	struct rl_state st;
	struct db_res *r = NULL;
	struct json_object *user;
	struct acct_token t;
	int64_t uid;

	snprintf(key, sizeof(key), "rl:register:ip:%s", req->client_addr);
	if (rl_hit(key, auth_limits.register_window_s, &st) < 0) {
		http_reply_error(req, TH_EUNAVAILABLE, "rate limiter unavailable", NULL);
		return;
	}
	if (st.count > auth_limits.register_max) {
		rl_reply_limited(req, &st);
		return;
	}
	if (jh_string_or_400(req, req->json, "email", 3, 254, JH_REQUIRED, &email) < 0 ||
	    jh_string_or_400(req, req->json, "username", 3, 32, JH_REQUIRED, &username) < 0 ||
	    jh_string_or_400(req, req->json, "password", 8, 128, JH_REQUIRED, &password) < 0 ||
	    jh_string_or_400(req, req->json, "display_name", 1, 64, JH_NAME, &display) < 0)
		return;
	if (!email_valid(email)) {
		http_reply_error(req, TH_EVALIDATION, "email is not an email address", "email");
		return;
	}
	if (!username_valid(username)) {
		http_reply_error(req, TH_EVALIDATION, "username must be 3 to 32 of a-z, 0-9 and _",
				 "username");
		return;
	}
	if (!display)
		display = username;
	switch (password_hash(password, hash, sizeof(hash))) {
	case 0:
		break;
	case PASSWORD_BUSY:
		http_reply_error(req, TH_EUNAVAILABLE, "too many password checks at once", NULL);
		return;
	default:
		http_reply_error(req, TH_EINTERNAL, "cannot hash the password", NULL);
		return;
	}
	if (db_begin_or_reply(req) < 0)
		return;
	{
		const char *params[] = {email, username, display, hash};

		r = db_own(req, db_exec(DB_PRIMARY,
					"INSERT INTO users AS u (email, username, display_name, "
					"password_hash) "
					"VALUES ($1, $2, $3, $4) RETURNING " USER_COLS
					", u.credential_epoch",
					4, params));
	}
	if (!r) {
		if (db_last_err() == TH_ECONFLICT) {
			int by_email = strcmp(db_last_constraint(), "users_email_key") == 0;

			http_reply_error(req, TH_ECONFLICT,
					 by_email ? "email is already registered"
						  : "username is taken",
					 by_email ? "email" : "username");
		} else {
			log_error("register: %s", db_last_error());
			http_reply_error(req,
					 db_last_err() == TH_EUNAVAILABLE ? TH_EUNAVAILABLE
									  : TH_EINTERNAL,
					 NULL, NULL);
		}
		db_rollback();
		return;
	}
	uid = strtoll(db_res_get(r, 0, 0), NULL, 10);
	user = jh_own(req, user_json(r, 0, 0));
	/* the address is proven by the link of a mail queued with the account
	 * (the same token and mail as POST /api/auth/verify-email/request); an
	 * address the mailer cannot send to (lib/mail.h) gets none: the account
	 * changes it (POST /api/auth/email) */
	acct_token_make(&t);
	if (mail_addr_ok(email) &&
	    (acct_token_store(req, &t, uid, "verify_email", email, ACCT_VERIFY_TTL_S) < 0 ||
	     acct_mail_queue(req, "verify_email", email, uid, t.text, display, NULL) < 0))
		return;
	log_info("audit: user %lld registered", (long long)uid);
	/* the session is created in the same transaction: a client never gets
	 * an account without the tokens to use it */
	session_start_reply(req, 201, uid, db_res_get(r, 0, USER_NCOLS), "cannot start a session",
			    user, 1);
}

/* Gives back one hit of a login budget: the attempt was not a failure (the
 * right password) or nothing was checked (no hash slot).  Best effort: a
 * lost refund only makes the limit stricter. */
static void rl_refund(struct http_req *req, const char *key)
{
	const char *argv[] = {"DECR", key};

	(void)cache_own(req, cache_cmd(2, argv, NULL));
}

/* How long an attempt waits for attempts of the same budget that are still
 * being checked (they may turn out right and give their hit back). */
#define LOGIN_CONTENTION_MS 3000
#define LOGIN_CONTENTION_STEP_MS 20

/* Takes one hit of the budget `key` (max per window) before the password is
 * checked.  The key counts attempts being checked plus failures; key + ":f"
 * counts failures alone.  Over the limit because of failures: refused.  Over
 * it only because other attempts are still being checked (more parallel
 * attempts than the limit, right passwords among them): wait for them, at
 * most LOGIN_CONTENTION_MS, then refused.  0: taken; 1: refused (st says
 * until when); -1: Redis unavailable. */
static int budget_take(struct http_req *req, const char *key, long max, struct rl_state *st)
{
	char fkey[1200];
	struct rl_state fs;
	uint64_t deadline = mono_ms() + LOGIN_CONTENTION_MS;
	struct timespec nap = {.tv_sec = 0, .tv_nsec = LOGIN_CONTENTION_STEP_MS * 1000000L};

	snprintf(fkey, sizeof(fkey), "%s:f", key);
	for (;;) {
		if (rl_hit(key, auth_limits.login_window_s, st) < 0)
			return -1;
		if (st->count <= max)
			return 0;
		rl_refund(req, key);
		if (rl_peek(fkey, &fs) < 0)
			return -1;
		if (fs.count >= max || mono_ms() >= deadline)
			return 1;
		nanosleep(&nap, NULL);
	}
}

/* A failed attempt: its hit stays, and the failure is counted. */
static int budget_fail(const char *key)
{
	char fkey[1200];
	struct rl_state fs;

	snprintf(fkey, sizeof(fkey), "%s:f", key);
	return rl_hit(fkey, auth_limits.login_window_s, &fs);
}

/* POST /api/auth/login.
 *
 * The budgets are taken before the password is hashed, not after: each
 * attempt first counts itself (one atomic INCR per key, ratelimit.c), and
 * only an attempt whose count is within the limit is evaluated.  Sixteen
 * parallel wrong passwords thus get five evaluations and eleven 429s, where
 * a check-then-count let every attempt that started before the fifth
 * failure was counted hash too.  A right password (and an attempt that
 * could not be checked) gives its hit back, so the budget counts failures;
 * once it holds max failures, even the right password is refused (API.md).
 *
 * One budget per account: the login (username or e-mail) is resolved to
 * the user id first and the key is the id, so typing the e-mail does not
 * open a second budget.  An unknown login gets a key on the normalized
 * login, and is hashed against a dummy like a known one: the same work,
 * the same answers. */
/* after USER_COLS: the hash, TOTP on, suspended, and the credential epoch
 * read with the hash (the session starts only while it is unchanged) */
#define LOGIN_COLS                                                                   \
	", u.password_hash, u.totp_secret IS NOT NULL, u.suspended_at IS NOT NULL, " \
	"u.credential_epoch "

void login_handler(struct http_req *req)
{
	const char *login, *password, *totp = NULL, *hash = NULL;
	char ukey[1100], ikey[128], lower[1024];
	struct rl_state us, is;
	struct db_res *r;
	size_t i;
	int ok, taken;

	if (jh_string_or_400(req, req->json, "login", 1, 254, JH_REQUIRED, &login) < 0 ||
	    jh_string_or_400(req, req->json, "password", 1, 128, JH_REQUIRED, &password) < 0 ||
	    jh_string_or_400(req, req->json, "totp", 1, 32, 0, &totp) < 0)
		return;
	for (i = 0; login[i] && i + 1 < sizeof(lower); i++)
		lower[i] = (char)tolower((unsigned char)login[i]);
	lower[i] = '\0';
	{
		const char *params[] = {lower};

		/* the primary: a login right after register (or a password
		 * change) must find what a lagging replica has not replayed yet */
		r = db_exec_or_reply(req, DB_PRIMARY,
				     strchr(lower, '@') ? "SELECT " USER_COLS LOGIN_COLS
							  "FROM users u WHERE u.email = $1"
							: "SELECT " USER_COLS LOGIN_COLS
							  "FROM users u WHERE u.username = $1",
				     1, params);
	}
	if (!r)
		return;
	if (db_res_rows(r) == 1) {
		hash = db_res_get(r, 0, USER_NCOLS);
		snprintf(ukey, sizeof(ukey), "rl:login:id:%s", db_res_get(r, 0, 0));
	} else {
		snprintf(ukey, sizeof(ukey), "rl:login:u:%s", lower);
	}
	snprintf(ikey, sizeof(ikey), "rl:login:ip:%s", req->client_addr);
	/* 1. the address's budget, then the account's: each hit counts itself */
	taken = budget_take(req, ikey, auth_limits.login_ip_max, &is);
	if (taken != 0) {
		if (taken < 0)
			http_reply_error(req, TH_EUNAVAILABLE, "rate limiter unavailable", NULL);
		else
			rl_reply_limited(req, &is);
		return;
	}
	taken = budget_take(req, ukey, auth_limits.login_user_max, &us);
	if (taken != 0) {
		rl_refund(req, ikey); /* the account refused it: the address's budget stays */
		if (taken < 0)
			http_reply_error(req, TH_EUNAVAILABLE, "rate limiter unavailable", NULL);
		else
			rl_reply_limited(req, &us);
		return;
	}
	/* 2. within both budgets: evaluate */
	metrics_add(c_checks, 1);
	ok = password_verify(hash, password);
	if (ok == 1 && strcmp(db_res_get(r, 0, USER_NCOLS + 1), "t") == 0 && totp) {
		/* the second factor: a wrong or used code is a failed attempt
		 * like a wrong password (the budgets below keep their hits) */
		int t = totp_check_login(req, strtoll(db_res_get(r, 0, 0), NULL, 10), totp);

		if (t < 0)
			return;
		ok = t;
	}
	if (ok == PASSWORD_BUSY || ok) {
		/* nothing was checked, or it was right: not a failed attempt */
		rl_refund(req, ukey);
		rl_refund(req, ikey);
	}
	if (ok == PASSWORD_BUSY) {
		http_reply_error(req, TH_EUNAVAILABLE, "too many password checks at once", NULL);
		return;
	}
	if (!ok) {
		metrics_add(c_failures, 1);
		/* the hits stay counted whatever happens here; the failure
		 * counts only tell contention from failures (budget_take) */
		if (budget_fail(ukey) < 0 || budget_fail(ikey) < 0)
			log_warn("login: a failure could not be counted: %s", cache_last_error());
		/* the same answer for an unknown login and a wrong password */
		http_reply_error(req, TH_EUNAUTHORIZED, "wrong login or password", NULL);
		return;
	}
	if (strcmp(db_res_get(r, 0, USER_NCOLS + 2), "t") == 0) {
		/* told only to who knows the password */
		http_reply_error(req, TH_ESUSPENDED, "the account is suspended", NULL);
		return;
	}
	if (strcmp(db_res_get(r, 0, USER_NCOLS + 1), "t") == 0 && !totp) {
		/* the password was right: not a failure; the client asks for the code */
		totp_check_login(req, 0, NULL);
		return;
	}
	{
		int64_t uid = strtoll(db_res_get(r, 0, 0), NULL, 10);
		struct json_object *user = jh_own(req, user_json(r, 0, 0));

		/* a reset or password change since the hash was read: the
		 * password checked is no longer the account's */
		session_start_reply(req, 200, uid, db_res_get(r, 0, USER_NCOLS + 3),
				    "wrong login or password", user, 0);
	}
}

/* GET /api/auth/me serves the caller's own row from a per-worker cache
 * (idcache.h) for at most me_cache_ttl_ms.  Why staleness is acceptable: the
 * routes that change a user row (verify.c: the address and its proof;
 * recovery.c: the password, which /me does not show) call me_cache_forget()
 * for this worker, and the other workers catch up within the lifetime; an
 * operator's SQL shows within the lifetime too.
 * Revocation is not the cache's business: the app loop verifies the token,
 * revocation included, before this handler runs, and the cache is keyed by
 * the token's user id alone, so it never answers for another caller. */
static struct idcache *me_cache;
static uint64_t me_cache_ttl_ms;
static int me_hits = -1, me_misses = -1;

int me_cache_init(void)
{
	size_t slots = (size_t)cfg_int("TH_ME_CACHE_SLOTS", 1024, 0, IDCACHE_MAX_SLOTS);

	me_cache_ttl_ms = (uint64_t)cfg_int("TH_ME_CACHE_TTL_MS", 5000, 0, 60000);
	if (slots == 0 || me_cache_ttl_ms == 0)
		return 0; /* switched off: every request reads PostgreSQL */
	me_cache = idcache_new(slots, me_cache_ttl_ms);
	if (!me_cache) {
		log_error("me cache: cannot allocate %zu slots", slots);
		return -1;
	}
	me_hits = metrics_counter("me_cache_hits_total");
	me_misses = metrics_counter("me_cache_misses_total");
	return 0;
}

void me_cache_fini(void)
{
	idcache_free(me_cache);
	me_cache = NULL;
}

void me_cache_forget(int64_t user_id)
{
	if (me_cache)
		idcache_forget(me_cache, user_id);
}

/* The body {"user": {...with email}} of user_id into the arena, or NULL with
 * the error replied. */
static char *me_body_or_reply(struct http_req *req, size_t *len)
{
	char id[24];
	const char *params[] = {id};
	const char *s;
	char *body = NULL;
	struct db_res *r;
	struct json_object *o, *user;

	snprintf(id, sizeof(id), "%lld", (long long)req->user_id);
	/* the primary: a caller reads its own account right after writing it */
	r = db_exec_or_reply(req, DB_PRIMARY,
			     "SELECT " USER_COLS ", u.email, u.email_verified_at IS NOT NULL, "
			     "u.totp_secret IS NOT NULL FROM users u WHERE u.id = $1",
			     1, params);
	if (!r)
		return NULL;
	if (db_res_rows(r) != 1) {
		http_reply_error(req, TH_EUNAUTHORIZED, "account no longer exists", NULL);
		return NULL;
	}
	o = jh_object(req);
	user = user_json(r, 0, 0);
	if (!o || !user || json_object_object_add(o, "user", user) < 0) {
		http_reply_error(req, TH_EINTERNAL, "out of memory", NULL);
		return NULL;
	}
	json_object_object_add(user, "email", json_object_new_string(db_res_get(r, 0, USER_NCOLS)));
	json_object_object_add(user, "email_verified",
			       json_object_new_boolean(db_res_get(r, 0, USER_NCOLS + 1)[0] == 't'));
	json_object_object_add(user, "totp_enabled",
			       json_object_new_boolean(db_res_get(r, 0, USER_NCOLS + 2)[0] == 't'));
	s = json_object_to_json_string_length(o,
					      JSON_C_TO_STRING_PLAIN |
						      JSON_C_TO_STRING_NOSLASHESCAPE,
					      len);
	if (s)
		body = arena_strndup(req->arena, s, *len);
	if (!body)
		http_reply_error(req, TH_EINTERNAL, "out of memory", NULL);
	return body;
}

void me_handler(struct http_req *req)
{
	const char *cached = NULL;
	char *body;
	size_t len = 0;
	uint64_t now = 0;

	if (me_cache) {
		now = mono_ms();
		cached = idcache_get(me_cache, req->user_id, now, &len);
	}
	if (cached) {
		/* a copy: the cache's bytes may be replaced before the reply is sent */
		body = arena_strndup(req->arena, cached, len);
		if (!body) {
			http_reply_error(req, TH_EINTERNAL, "out of memory", NULL);
			return;
		}
		metrics_add(me_hits, 1);
	} else {
		body = me_body_or_reply(req, &len);
		if (!body)
			return;
		if (me_cache) {
			/* too long to keep (a heavily escaped name): served uncached */
			(void)idcache_put(me_cache, req->user_id, now, body, len);
			metrics_add(me_misses, 1);
		}
	}
	http_reply_raw(req, 200, "application/json", body, len);
	http_add_header(req, "Cache-Control", "no-store");
}
