/* reply: the request-facing halves of the core library's db, cache,
 * ratelimit, policy and events (lib/).  Each does what the core call does
 * and, when that fails or refuses, writes the error reply itself and returns
 * NULL or -1, so a handler step reads `if (!r) return;` (Redis's
 * lookupKeyReadOrReply).  They keep their core module's prefix, so a call
 * site reads as the module it uses; the core library itself stays free of
 * HTTP (the broker plugin and the bridge link it alone). */
#ifndef TH_REPLY_H
#define TH_REPLY_H

#include <stddef.h>
#include <stdint.h>

#include "cache.h"
#include "db.h"
#include "events.h"
#include "http.h"
#include "policy.h"
#include "ratelimit.h"

struct json_object;

/* Replies to the failure db_last_err() reports: 409 conflict ("already
 * exists") for a unique violation, else logs the server's text and replies
 * 503 (database unavailable) or 500. */
void db_reply_failure(struct http_req *req);

/* As db_exec, but on failure replies (db_reply_failure).  The result belongs
 * to the request: it is released with the request's arena (db_res_own), so
 * a handler never frees it (db_res_free() may still release it early, in a
 * loop of many). */
struct db_res *db_exec_or_reply(struct http_req *req, enum db_role role, const char *sql, int n,
				const char *const *params);
/* Hands r (a db_exec() result, or NULL) to the request, as db_exec_or_reply()
 * does with its own: db_res_own(req->arena, r). */
struct db_res *db_own(struct http_req *req, struct db_res *r);

/* db_begin() and db_commit(), replying 503 (database down) or 500 themselves
 * on failure, so a handler reads `if (db_begin_or_reply(req) < 0) return;`. */
int db_begin_or_reply(struct http_req *req);
/* db_begin_snapshot(), replying as db_begin_or_reply does. */
int db_begin_snapshot_or_reply(struct http_req *req);
int db_commit_or_reply(struct http_req *req);
/* For a write that must change exactly one row (the row may have gone since
 * the handler looked): frees r; 0 when one row changed, else rolls back any
 * open transaction, replies 404 with `what` and returns -1. */
int db_one_row_changed_or_404(struct http_req *req, struct db_res *r, const char *what);

/* cache_cmd(), replying 503 (cache unavailable) when Redis cannot be reached;
 * the reply belongs to the request (cache_own). */
struct cache_reply *cache_cmd_or_reply(struct http_req *req, int argc, const char *const *argv,
				       const size_t *lens);
/* Hands r (a cache_cmd() reply, or NULL) to the request:
 * cache_reply_own(req->arena, r).  Never cache_reply_free() it then. */
struct cache_reply *cache_own(struct http_req *req, struct cache_reply *r);

/* Replies 429 rate_limited with Retry-After from st. */
void rl_reply_limited(struct http_req *req, const struct rl_state *st);

/* Loads community `id` and the caller's standing in it (on the primary: a
 * caller sees their own join or role change at once).  c->id is 0 when it
 * does not exist.  -1 only on a database error (replied). */
int policy_load(struct http_req *req, int64_t id, struct community *c);
/* policy_decide() for the request's caller; replies and returns -1 when not
 * allowed.  what: the noun of the 404 message ("community", "channel"). */
int policy_check_or_reply(struct http_req *req, const struct community *c, enum role need,
			  const char *what);

/* Queues an event in the current transaction (events_queue):
 *   {"type": type, "community_id": community_id, <k1>: v1, <k2>: v2}
 * k1/k2 may be NULL.  Returns 0, or -1 with the error replied. */
int events_emit(struct http_req *req, const char *type, int64_t community_id, const char *k1,
		int64_t v1, const char *k2, int64_t v2);
/* Queues an arbitrary event object (must have "type"; consumed), up to
 * EVENTS_MAX_BYTES.  0, or -1 with the error replied. */
int events_emit_json(struct http_req *req, struct json_object *event);

#endif
