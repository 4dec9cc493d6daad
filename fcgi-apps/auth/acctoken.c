/* acctoken: the single-use tokens of account mails (verify an address,
 * reset a password) and the per-account mail budget.
 *
 * A token is 256 random bits in base64url, handed out only inside a mail;
 * account_tokens keeps its SHA-256 (db/migrations/0022_mail.sql), so a
 * leaked table grants nothing.  Consuming one is a single UPDATE ... WHERE
 * used_at IS NULL AND expires_at > now(): of two racing uses one wins. */
#include <json-c/json.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "auth.h"
#include "config.h"
#include "log.h"
#include "mail.h"
#include "reply.h"

#define ACCT_TOKEN_BYTES 32

struct acct_limits acct_limits;

void acct_limits_init(void)
{
	acct_limits.mail_max = (long)cfg_int("TH_RL_MAIL_MAX", 3, 1, 1000000);
	acct_limits.mail_window_s = (long)cfg_int("TH_RL_MAIL_WINDOW", 3600, 1, 86400);
	acct_limits.forgot_addr_max = (long)cfg_int("TH_RL_FORGOT_ADDR_MAX", 3, 1, 1000000);
	acct_limits.forgot_ip_max = (long)cfg_int("TH_RL_FORGOT_IP_MAX", 20, 1, 1000000);
	acct_limits.pwchange_max = (long)cfg_int("TH_RL_PASSWORD_CHANGE_MAX", 10, 1, 1000000);
	acct_limits.export_max = (long)cfg_int("TH_RL_EXPORT_MAX", 2, 1, 1000000);
	acct_limits.export_window_s = (long)cfg_int("TH_RL_EXPORT_WINDOW", 3600, 1, 86400);
}

void acct_token_hash(const char *text, char *hex, size_t hexsize)
{
	unsigned char digest[crypto_hash_sha256_BYTES];

	crypto_hash_sha256(digest, (const unsigned char *)text, strlen(text));
	sodium_bin2hex(hex, hexsize, digest, sizeof(digest));
}

void acct_token_make(struct acct_token *t)
{
	unsigned char rnd[ACCT_TOKEN_BYTES];

	randombytes_buf(rnd, sizeof(rnd));
	sodium_bin2base64(t->text, sizeof(t->text), rnd, sizeof(rnd),
			  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	sodium_memzero(rnd, sizeof(rnd));
	acct_token_hash(t->text, t->hash_hex, sizeof(t->hash_hex));
}

int acct_token_store(struct http_req *req, const struct acct_token *t, int64_t uid,
		     const char *kind, const char *email, long ttl_s)
{
	char id[24], ttl[24];
	const char *p[] = {t->hash_hex, id, kind, email, ttl};

	snprintf(id, sizeof(id), "%lld", (long long)uid);
	snprintf(ttl, sizeof(ttl), "%ld", ttl_s);
	return db_exec_or_reply(req, DB_PRIMARY,
				"INSERT INTO account_tokens (token_hash, user_id, kind, email, "
				"expires_at) VALUES (decode($1, 'hex'), $2, $3, $4, "
				"now() + $5::bigint * interval '1 second')",
				5, p)
		       ? 0
		       : -1;
}

int acct_mail_queue(struct http_req *req, const char *kind, const char *to, int64_t uid,
		    const char *token, const char *name, const char *new_email)
{
	struct json_object *o = json_object_new_object();
	const char *params;
	int rc = -1;

	if (!o)
		goto out;
	if (token)
		json_object_object_add(o, "token", json_object_new_string(token));
	if (name)
		json_object_object_add(o, "name", json_object_new_string(name));
	if (new_email)
		json_object_object_add(o, "new_email", json_object_new_string(new_email));
	params = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	rc = params ? mail_queue(kind, to, uid, params) : -1;
out:
	json_object_put(o);
	if (rc < 0) {
		if (db_last_err() == TH_EUNAVAILABLE)
			http_reply_error(req, TH_EUNAVAILABLE, "database unavailable", NULL);
		else {
			log_error("mail %s for user %lld not queued: %s", kind, (long long)uid,
				  db_last_error());
			http_reply_error(req, TH_EINTERNAL, "cannot queue the mail", NULL);
		}
		db_rollback();
	}
	return rc;
}

int acct_budget_or_reply(struct http_req *req, const char *what, const char *who, long max,
			 long window_s)
{
	char key[400];
	struct rl_state st;

	snprintf(key, sizeof(key), "rl:%s:%s", what, who);
	if (rl_hit(key, window_s, &st) < 0) {
		http_reply_error(req, TH_EUNAVAILABLE, "rate limiter unavailable", NULL);
		return -1;
	}
	if (st.count > max) {
		rl_reply_limited(req, &st);
		return -1;
	}
	return 0;
}

int acct_mail_budget_or_reply(struct http_req *req, const char *kind, int64_t uid)
{
	char who[64];

	snprintf(who, sizeof(who), "%s:%lld", kind, (long long)uid);
	return acct_budget_or_reply(req, "mail", who, acct_limits.mail_max,
				    acct_limits.mail_window_s);
}

int acct_pwcheck_budget_or_reply(struct http_req *req)
{
	char who[24];

	snprintf(who, sizeof(who), "%lld", (long long)req->user_id);
	return acct_budget_or_reply(req, "pwcheck", who, acct_limits.pwchange_max,
				    acct_limits.mail_window_s);
}

int acct_addr_valid(const char *s)
{
	const char *at = strchr(s, '@');

	/* plain enough to stand in a header and an SMTP envelope, with a dot
	 * in the domain (as registration asks) */
	return mail_addr_ok(s) && at && strchr(at + 1, '.') && at[1] != '.' &&
	       s[strlen(s) - 1] != '.';
}
