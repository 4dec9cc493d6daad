/* reply: core calls that write the request's error reply themselves. */
#include "reply.h"

#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "ids.h"
#include "log.h"
#include "unreadver.h"

void db_reply_failure(struct http_req *req)
{
	enum th_err e = db_last_err();

	if (e == TH_ECONFLICT) {
		http_reply_error(req, TH_ECONFLICT, "already exists", NULL);
		return;
	}
	/* a limit the database keeps for the handler (migration 0020's edit
	 * limits, raised by its triggers): the caller's input broke a rule.
	 * Any other CHECK failing is a bug, and stays a 500 */
	if (strcmp(db_last_sqlstate(), "23514") == 0 &&
	    (strcmp(db_last_constraint(), "post_edits_limit") == 0 ||
	     strcmp(db_last_constraint(), "message_edits_limit") == 0)) {
		char why[96];

		snprintf(why, sizeof(why), "a limit of this item is reached (%s)",
			 db_last_constraint()[0] ? db_last_constraint() : "check");
		http_reply_error(req, TH_EVALIDATION, why, NULL);
		return;
	}
	log_error("db: %s [%s]", db_last_error(), db_last_sqlstate());
	http_reply_error(req, e == TH_EUNAVAILABLE ? TH_EUNAVAILABLE : TH_EINTERNAL,
			 e == TH_EUNAVAILABLE ? "database unavailable" : NULL, NULL);
}

struct db_res *db_own(struct http_req *req, struct db_res *r)
{
	return db_res_own(req->arena, r);
}

struct db_res *db_exec_or_reply(struct http_req *req, enum db_role role, const char *sql, int n,
				const char *const *params)
{
	struct db_res *r = db_own(req, db_exec(role, sql, n, params));

	if (!r)
		db_reply_failure(req);
	return r;
}

static int reply_tx_error(struct http_req *req, const char *what)
{
	int down = db_last_err() == TH_EUNAVAILABLE;

	log_error("db: %s failed: %s", what, db_last_error());
	http_reply_error(req, down ? TH_EUNAVAILABLE : TH_EINTERNAL,
			 down ? "database unavailable" : NULL, NULL);
	return -1;
}

int db_begin_or_reply(struct http_req *req)
{
	/* every transaction of a signed-in caller names them as its actor: a
	 * moderator action anywhere in it is logged with them (0033) */
	return db_begin_as(req->user_id) == 0 ? 0 : reply_tx_error(req, "begin");
}

int db_begin_snapshot_or_reply(struct http_req *req)
{
	return db_begin_snapshot() == 0 ? 0 : reply_tx_error(req, "begin");
}

int db_commit_or_reply(struct http_req *req)
{
	/* the versions of cached unread counts and notification pages this
	 * transaction made old (db/migrations/0040_unread_touch.sql) are bumped
	 * once it committed and before the reply (lib/unreadver.h) */
	return unreadver_commit() == 0 ? 0 : reply_tx_error(req, "commit");
}

int db_one_row_changed_or_404(struct http_req *req, struct db_res *r, const char *what)
{
	long long n = db_res_affected(r);

	db_res_free(r);
	if (n == 1)
		return 0;
	db_rollback();
	http_reply_error(req, TH_ENOTFOUND, what, NULL);
	return -1;
}

struct cache_reply *cache_cmd_or_reply(struct http_req *req, int argc, const char *const *argv,
				       const size_t *lens)
{
	struct cache_reply *r = cache_cmd(argc, argv, lens);

	if (!r) {
		http_reply_error(req, TH_EUNAVAILABLE, "cache unavailable", NULL);
		return NULL;
	}
	r = cache_own(req, r);
	if (!r)
		http_reply_error(req, TH_EINTERNAL, "out of memory", NULL);
	return r;
}

struct cache_reply *cache_own(struct http_req *req, struct cache_reply *r)
{
	return cache_reply_own(req->arena, r);
}

void rl_reply_limited(struct http_req *req, const struct rl_state *st)
{
	char secs[24];

	snprintf(secs, sizeof(secs), "%ld", st->retry_after_s);
	http_reply_error(req, TH_ERATELIMITED, "too many attempts; try again later", NULL);
	http_set_header(req, "Retry-After", secs);
}

int policy_load(struct http_req *req, int64_t id, struct community *c)
{
	char cid[24], uid[24];
	const char *params[] = {ids_text(cid, id), ids_text(uid, req->user_id)};
	struct db_res *r;

	memset(c, 0, sizeof(*c));
	r = db_exec_or_reply(req, DB_PRIMARY,
			     "SELECT " POLICY_COLS " FROM community_access($2, $1) a", 2, params);
	if (!r)
		return -1;
	if (db_res_rows(r) == 1)
		policy_read(r, 0, 0, id, c);
	db_res_free(r);
	return 0;
}

int policy_check_or_reply(struct http_req *req, const struct community *c, enum role need,
			  const char *what)
{
	char msg[48];

	switch (policy_decide(c, req->user_id, need)) {
	case TH_OK:
		return 0;
	case TH_ENOTFOUND:
		snprintf(msg, sizeof(msg), "no such %s", what);
		http_reply_error(req, TH_ENOTFOUND, msg, NULL);
		break;
	case TH_EUNAUTHORIZED:
		http_reply_error(req, TH_EUNAUTHORIZED, "sign in first", NULL);
		http_set_header(req, "WWW-Authenticate", "Bearer");
		break;
	case TH_EBANNED:
		http_reply_error(req, TH_EBANNED, "you are banned from this community", NULL);
		break;
	default:
		http_reply_error(req, TH_EFORBIDDEN,
				 need == ROLE_MEMBER ? "join the community first"
						     : "your role does not allow this",
				 NULL);
		break;
	}
	return -1;
}

static int emit(struct http_req *req, const char *payload)
{
	if (events_queue(payload) == 0)
		return 0;
	db_reply_failure(req);
	return -1;
}

int events_emit_json(struct http_req *req, struct json_object *event)
{
	const char *s = json_object_to_json_string_ext(event, JSON_C_TO_STRING_PLAIN);
	int rc;

	if (!s || strlen(s) > EVENTS_MAX_BYTES) {
		json_object_put(event);
		http_reply_error(req, TH_EINTERNAL, "event too large", NULL);
		return -1;
	}
	rc = emit(req, s);
	json_object_put(event);
	return rc;
}

int events_emit(struct http_req *req, const char *type, int64_t community_id, const char *k1,
		int64_t v1, const char *k2, int64_t v2)
{
	char payload[256];
	int n;

	/* type and keys are literals of ours; the values are integers */
	n = snprintf(payload, sizeof(payload), "{\"type\":\"%s\",\"community_id\":%lld", type,
		     (long long)community_id);
	if (k1)
		n += snprintf(payload + n, sizeof(payload) - (size_t)n, ",\"%s\":%lld", k1,
			      (long long)v1);
	if (k2)
		n += snprintf(payload + n, sizeof(payload) - (size_t)n, ",\"%s\":%lld", k2,
			      (long long)v2);
	snprintf(payload + n, sizeof(payload) - (size_t)n, "}");
	return emit(req, payload);
}
