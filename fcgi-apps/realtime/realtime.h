/* The realtime app's internal interfaces (never included by another app). */
#ifndef TH_REALTIME_H
#define TH_REALTIME_H

#include <stddef.h>
#include <stdint.h>

#include "http.h"
#include "user.h"

/* message body: 4000 chars, each up to 12 bytes as a JSON \u escape pair,
 * plus id and reply_to */
#define RT_BODY_LIMIT (64 * 1024)
#define RT_UUID_LEN 36

/* Roles rank owner > admin > moderator > member > none (API.md). */
enum rt_role { RT_NONE = 0, RT_MEMBER, RT_MODERATOR, RT_ADMIN, RT_OWNER };

/* What a request knows about a channel, its community and the caller. */
struct rt_channel {
	int64_t id;
	int64_t community_id;
	int is_public;
	enum rt_role my_role;   /* RT_NONE for non-members */
	int banned;             /* the caller is banned from the community */
};

/* access.c: loads channel `channel_id` with its community and the caller's
 * membership and ban in one query (on the primary: a caller sees their own
 * join at once), and checks the caller may act with role `need` (RT_NONE:
 * read).  The rules are the community app's:
 *   404 when the channel does not exist, or its community is private and the
 *       caller is no member;
 *   403 banned when the caller is banned and need > RT_NONE;
 *   403 forbidden when the caller's role is below need.
 * Replies and returns -1 when not allowed, 0 otherwise (ch filled). */
int channel_access(struct http_req *req, int64_t channel_id, enum rt_role need,
		   struct rt_channel *ch);
/* Same, the channel's standing loaded but no rule applied (ch->id == 0 when
 * it does not exist; -1 only on a database error, replied). */
int channel_load(struct http_req *req, int64_t channel_id, struct rt_channel *ch);
/* Applies the rules above to a loaded channel; replies and returns -1 when
 * not allowed.  what: the noun of the 404 message ("channel", "call"). */
int channel_check(struct http_req *req, const struct rt_channel *ch, enum rt_role need,
		  const char *what);

/* "123" for an id, into buf. */
const char *rt_id_text(char buf[24], int64_t id);
/* 1 when s (n bytes) is xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx in hex digits. */
int rt_uuid_ok(const char *s, size_t n);
/* BEGIN / COMMIT on the primary; reply 503 (or 500) and return -1 on failure.
 * A transaction left open is rolled back by the app loop. */

/* calls.c: registers its metrics counter (start-up). */
int calls_init(void);

/* turn.c: reads TH_TURN_* at start-up (exits on a malformed value). */
int turn_init(void);
/* ice_servers of API.md for user uid: a new array (caller owns it), [] when
 * TURN is not configured (no secret file); NULL when out of memory. */
struct json_object *turn_ice_servers(int64_t uid);

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
