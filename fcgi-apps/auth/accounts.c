/* accounts: register, login, me. */
#include <ctype.h>
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
#include "password.h"
#include "ratelimit.h"
#include "user.h"

struct auth_limits auth_limits;

int accounts_init(void)
{
	auth_limits.login_user_max = (long)cfg_int("TH_RL_LOGIN_USER_MAX", 5, 1, 1000000);
	auth_limits.login_ip_max = (long)cfg_int("TH_RL_LOGIN_IP_MAX", 20, 1, 1000000);
	auth_limits.login_window_s = (long)cfg_int("TH_RL_LOGIN_WINDOW", 900, 1, 86400);
	auth_limits.register_max = (long)cfg_int("TH_RL_REGISTER_MAX", 10, 1, 1000000);
	auth_limits.register_window_s = (long)cfg_int("TH_RL_REGISTER_WINDOW", 3600, 1, 86400);
	return password_init();
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

	if (!at || at == s || strchr(at + 1, '@') || !strchr(at + 1, '.') ||
	    at[1] == '.' || s[strlen(s) - 1] == '.')
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
	    jh_string_or_400(req, req->json, "display_name", 1, 64, 0, &display) < 0)
		return;
	if (!email_valid(email)) {
		http_reply_error(req, TH_EVALIDATION, "email is not an email address", "email");
		return;
	}
	if (!username_valid(username)) {
		http_reply_error(req, TH_EVALIDATION,
				 "username must be 3 to 32 of a-z, 0-9 and _", "username");
		return;
	}
	if (!display)
		display = username;
	if (password_hash(password, hash, sizeof(hash)) < 0) {
		http_reply_error(req, TH_EINTERNAL, "cannot hash the password", NULL);
		return;
	}
	if (db_begin_or_reply(req) < 0)
		return;
	{
		const char *params[] = {email, username, display, hash};

		r = db_exec(DB_PRIMARY,
			    "INSERT INTO users AS u (email, username, display_name, password_hash) "
			    "VALUES ($1, $2, $3, $4) RETURNING " USER_COLS,
			    4, params);
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
			http_reply_error(req, db_last_err() == TH_EUNAVAILABLE ? TH_EUNAVAILABLE
									      : TH_EINTERNAL,
					 NULL, NULL);
		}
		db_rollback();
		return;
	}
	uid = strtoll(db_res_get(r, 0, 0), NULL, 10);
	user = user_json(r, 0, 0);
	db_res_free(r);
	log_info("audit: user %lld registered", (long long)uid);
	/* the session is created in the same transaction: a client never gets
	 * an account without the tokens to use it */
	session_start_reply(req, 201, uid, user);
}

void login_handler(struct http_req *req)
{
	const char *login, *password, *hash = NULL;
	char ukey[1100], ikey[128], lower[1024];
	struct rl_state us, is;
	struct db_res *r;
	size_t i;
	int ok;

	if (jh_string_or_400(req, req->json, "login", 1, 254, JH_REQUIRED, &login) < 0 ||
	    jh_string_or_400(req, req->json, "password", 1, 128, JH_REQUIRED, &password) < 0)
		return;
	for (i = 0; login[i] && i + 1 < sizeof(lower); i++)
		lower[i] = (char)tolower((unsigned char)login[i]);
	lower[i] = '\0';
	snprintf(ukey, sizeof(ukey), "rl:login:u:%s", lower);
	snprintf(ikey, sizeof(ikey), "rl:login:ip:%s", req->client_addr);
	if (rl_peek(ukey, &us) < 0 || rl_peek(ikey, &is) < 0) {
		http_reply_error(req, TH_EUNAVAILABLE, "rate limiter unavailable", NULL);
		return;
	}
	if (us.count >= auth_limits.login_user_max) {
		rl_reply_limited(req, &us);
		return;
	}
	if (is.count >= auth_limits.login_ip_max) {
		rl_reply_limited(req, &is);
		return;
	}
	{
		const char *params[] = {lower};

		r = db_exec_or_reply(req, DB_READ,
				     strchr(lower, '@')
					     ? "SELECT " USER_COLS ", u.password_hash FROM users u WHERE u.email = $1"
					     : "SELECT " USER_COLS ", u.password_hash FROM users u WHERE u.username = $1",
				     1, params);
	}
	if (!r)
		return;
	if (db_res_rows(r) == 1)
		hash = db_res_get(r, 0, USER_NCOLS);
	ok = password_verify(hash, password);
	if (!ok) {
		db_res_free(r);
		if (rl_hit(ukey, auth_limits.login_window_s, &us) < 0 ||
		    rl_hit(ikey, auth_limits.login_window_s, &is) < 0) {
			http_reply_error(req, TH_EUNAVAILABLE, "rate limiter unavailable", NULL);
			return;
		}
		/* the same answer for an unknown login and a wrong password */
		http_reply_error(req, TH_EUNAUTHORIZED, "wrong login or password", NULL);
		return;
	}
	{
		int64_t uid = strtoll(db_res_get(r, 0, 0), NULL, 10);
		struct json_object *user = user_json(r, 0, 0);

		db_res_free(r);
		if (db_begin() < 0) {
			json_object_put(user);
			http_reply_error(req, TH_EUNAVAILABLE, "database unavailable", NULL);
			return;
		}
		session_start_reply(req, 200, uid, user);
	}
}

void me_handler(struct http_req *req)
{
	char id[24];
	const char *params[] = {id};
	struct db_res *r;
	struct json_object *o, *user;

	snprintf(id, sizeof(id), "%lld", (long long)req->user_id);
	/* the primary: a caller reads its own account right after writing it */
	r = db_exec_or_reply(req, DB_PRIMARY,
			     "SELECT " USER_COLS ", u.email FROM users u WHERE u.id = $1", 1, params);
	if (!r)
		return;
	if (db_res_rows(r) != 1) {
		db_res_free(r);
		http_reply_error(req, TH_EUNAUTHORIZED, "account no longer exists", NULL);
		return;
	}
	user = user_json(r, 0, 0);
	json_object_object_add(user, "email", json_object_new_string(db_res_get(r, 0, USER_NCOLS)));
	db_res_free(r);
	o = json_object_new_object();
	json_object_object_add(o, "user", user);
	http_reply_json(req, 200, o);
	http_add_header(req, "Cache-Control", "no-store");
}
