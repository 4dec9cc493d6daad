/* The realtime app's internal interfaces (never included by another app). */
#ifndef TH_REALTIME_H
#define TH_REALTIME_H

#include <stddef.h>
#include <stdint.h>

struct json_object;

#include "http.h"
#include "modrule.h"
#include "ids.h"
#include "policy.h"
#include "user.h"

/* message body: 4000 chars, each up to 12 bytes as a JSON \u escape pair,
 * plus id and reply_to */
#define RT_BODY_LIMIT (64 * 1024)
/* people in a DM, the caller included (API.md: 1-9 others) */
#define RT_DM_MAX 10
/* What a request knows about a channel, its community and the caller. */
struct rt_channel {
	int64_t id;                 /* 0: no such channel */
	struct community cm;        /* its community, the caller's standing there
			      * (cm.dm: a DM, no community) */
	int64_t members[RT_DM_MAX]; /* a DM's members, ascending */
	int nmembers;
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

/* Adds "inbox": [members] to an event of a DM channel (the relay publishes
 * it to each member's user/<id>/inbox; a DM has no events/community topic).
 * Nothing for a community channel. */
void channel_event_inbox(const struct rt_channel *ch, struct json_object *ev);

/* BEGIN / COMMIT on the primary; reply 503 (or 500) and return -1 on failure.
 * A transaction left open is rolled back by the app loop. */

/* chatrules.c: a community's slow mode and content limits on a message
 * posted over REST, the rule the broker applies to MQTT (lib/modrule.h). */
struct chatrules {
	struct modrule m;
	int exempt; /* moderator+, site admin, DM, or no rules */
};
/* Loads the rules of ch's community for the caller; -1 replied. */
int chatrules_load(struct http_req *req, const struct rt_channel *ch, struct chatrules *cr);
/* The content limits: 400 validation_failed naming the limit (field body). */
int chatrules_body_or_reply(struct http_req *req, const struct chatrules *cr, const char *body);
/* Slow mode: takes the caller's send in the channel (message id `id`), or
 * replies 429 rate_limited with Retry-After (seconds left). */
int chatrules_slow_or_reply(struct http_req *req, const struct chatrules *cr, int64_t channel_id,
			    const char *id);

/* calls.c: registers its metrics counter (start-up). */
int calls_init(void);

/* turn.c: reads TH_TURN_* at start-up (exits on a malformed value). */
int turn_init(void);
/* ice_servers of API.md for the request's caller: an array the request owns
 * (jh_own), [] when TURN is not configured (no secret file); NULL when out
 * of memory. */
struct json_object *turn_ice_servers(struct http_req *req);

/* handlers */
/* A message's columns and their numbers, from MSG_FROM (messages.c) */
#define MSG_COLS                                                                      \
	"m.id, m.channel_id, m.seq, " USER_COLS ", m.body, m.reply_to, " TH_TIME_SQL( \
		"m.created_at") ", " TH_TIME_SQL("m.edited_at") ", " TH_TIME_SQL("m.deleted_at")
#define MSG_FROM " FROM messages m LEFT JOIN users u ON u.id = m.sender_id "
enum {
	MSG_C_ID,
	MSG_C_CHANNEL,
	MSG_C_SEQ,
	MSG_C_USER,
	MSG_C_BODY = MSG_C_USER + USER_NCOLS,
	MSG_C_REPLY,
	MSG_C_CREATED,
	MSG_C_EDITED,
	MSG_C_DELETED
};
/* {id, channel_id, seq, sender, body, reply_to, created_at, edited_at,
 * deleted_at} from row `row` of MSG_COLS; a page_row_fn for page_reply() */
struct json_object *message_row(const struct db_res *r, int row, void *ctx);

/* A message as its permission checks need it. */
struct msg_ref {
	char id[IDS_UUID_LEN + 1];
	int64_t sender_id;
	int64_t seq;
	int deleted;
};

/* messages.c: loads the message of path parameter :id and its channel, and
 * checks the caller may read it.  404 for a malformed id, an unknown one, or
 * one in a community the caller may not see.  -1 when replied. */
int message_access(struct http_req *req, struct msg_ref *m, struct rt_channel *ch);

void messages_list(struct http_req *req);
void messages_create(struct http_req *req);
void messages_get(struct http_req *req);
void messages_patch(struct http_req *req);
void messages_delete(struct http_req *req);
/* notifications.c */
void notifications_list(struct http_req *req);
void notifications_read(struct http_req *req);
/* search.c: GET /api/messages/search */
void messages_search(struct http_req *req);
/* history.c: GET /api/messages/:id/history */
void messages_history(struct http_req *req);

void calls_create(struct http_req *req);
void calls_get(struct http_req *req);
void calls_join(struct http_req *req);
void calls_leave(struct http_req *req);

void turn_get(struct http_req *req);

/* dms.c */
void dms_create(struct http_req *req);
void dms_list(struct http_req *req);
void dms_leave(struct http_req *req);

/* push.c: Web Push subscriptions and the VAPID public key */
int push_init(void);
void push_vapid(struct http_req *req);
void push_subscribe(struct http_req *req);
void push_unsubscribe(struct http_req *req);

/* blocks.c */
void blocks_put(struct http_req *req);
void blocks_delete(struct http_req *req);
void blocks_list(struct http_req *req);
/* The DM state of user uid in every DM shared with user other, to the
 * mirror (after a block, an unblock). */
void blocks_mirror_pair(int64_t uid, int64_t other);

/* reads.c */
void reads_put(struct http_req *req);
void reads_unread(struct http_req *req);

/* dmmirror.c: a DM's members and their state (dm_member_state) to the
 * mirror, after the change committed; best effort like every mirror write. */
void dm_mirror(int64_t chid);
/* One member gone from a DM's mirror. */
void dm_mirror_gone(int64_t chid, int64_t uid);

#endif
