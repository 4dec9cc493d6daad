/* The realtime app's internal interfaces (never included by another app). */
#ifndef TH_REALTIME_H
#define TH_REALTIME_H

#include <stddef.h>
#include <stdint.h>

#include "http.h"
#include "ids.h"
#include "policy.h"
#include "user.h"

/* message body: 4000 chars, each up to 12 bytes as a JSON \u escape pair,
 * plus id and reply_to */
#define RT_BODY_LIMIT (64 * 1024)
/* What a request knows about a channel, its community and the caller. */
struct rt_channel {
	int64_t id;          /* 0: no such channel */
	struct community cm; /* its community, the caller's standing there */
};

/* access.c: loads channel `channel_id` with its community and the caller's
 * membership and ban in one query (on the primary: a caller sees their own
 * join at once), and checks the caller may act with role `need` (ROLE_NONE:
 * read).  The rules are lib/policy.c's:
 *   404 when the channel does not exist, or its community is private and the
 *       caller is no member;
 *   403 banned when the caller is banned and need > ROLE_NONE;
 *   403 forbidden when the caller's role is below need.
 * Replies and returns -1 when not allowed, 0 otherwise (ch filled). */
int channel_access(struct http_req *req, int64_t channel_id, enum role need, struct rt_channel *ch);
/* Same, the channel's standing loaded but no rule applied (ch->id == 0 when
 * it does not exist; -1 only on a database error, replied). */
int channel_load(struct http_req *req, int64_t channel_id, struct rt_channel *ch);
/* Applies the rules above to a loaded channel; replies and returns -1 when
 * not allowed.  what: the noun of the 404 message ("channel", "call"). */
int channel_check(struct http_req *req, const struct rt_channel *ch, enum role need,
		  const char *what);

/* BEGIN / COMMIT on the primary; reply 503 (or 500) and return -1 on failure.
 * A transaction left open is rolled back by the app loop. */

/* calls.c: registers its metrics counter (start-up). */
int calls_init(void);

/* turn.c: reads TH_TURN_* at start-up (exits on a malformed value). */
int turn_init(void);
/* ice_servers of API.md for the request's caller: an array the request owns
 * (jh_own), [] when TURN is not configured (no secret file); NULL when out
 * of memory. */
struct json_object *turn_ice_servers(struct http_req *req);

/* handlers */
void messages_list(struct http_req *req);
void messages_create(struct http_req *req);
void messages_get(struct http_req *req);
void messages_patch(struct http_req *req);
void messages_delete(struct http_req *req);

void calls_create(struct http_req *req);
void calls_get(struct http_req *req);
void calls_join(struct http_req *req);
void calls_leave(struct http_req *req);

void turn_get(struct http_req *req);

#endif
