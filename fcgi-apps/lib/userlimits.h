/* userlimits (prefix limits_): the per-user write limits of API.md ("Limits
 * every route and topic obeys"), their values in one place.  Not named
 * limits.h: with fcgi-apps/lib on the include path, a system header's
 * <limits.h> found this file instead (and make's dependency lists missed it).
 *
 * Every value is a TH_* setting read once at start-up (limits_init; a
 * malformed one stops the process, like every other setting), so a stack
 * can lower them (the integration tests do) without a rebuild:
 *
 *   kind        setting (default)                          window setting (default)
 *   post        TH_RL_POST_MAX (10)                        TH_RL_POST_WINDOW (60 s)
 *   comment     TH_RL_COMMENT_MAX (30)                     TH_RL_COMMENT_WINDOW (60 s)
 *   community   TH_RL_COMMUNITY_MAX (5)                    TH_RL_COMMUNITY_WINDOW (86400 s)
 *   reaction    TH_RL_REACTION_MAX (60)                    TH_RL_REACTION_WINDOW (60 s)
 *   call        TH_RL_CALL_MAX (20)                        TH_RL_CALL_WINDOW (60 s)
 *   dm opened   TH_RL_DM_MAX (20)                          TH_RL_DM_WINDOW (3600 s)
 *   block       TH_RL_BLOCK_MAX (100)                      TH_RL_BLOCK_WINDOW (3600 s)
 *   push sub.   TH_RL_PUSH_MAX (30)                        TH_RL_PUSH_WINDOW (3600 s)
 *   search      TH_RL_SEARCH_MAX (60)                      TH_RL_SEARCH_WINDOW (60 s)
 *   report      TH_RL_REPORT_MAX (20)                      TH_RL_REPORT_WINDOW (3600 s)
 *               (signed-in callers: a search costs O(matches) in PostgreSQL)
 *   edit        TH_RL_EDIT_MAX (30)                        TH_RL_EDIT_WINDOW (60 s)
 *               (post and message edits together: each keeps the earlier
 *               body in the edit history, so edits cost storage)
 *   manage      TH_RL_MANAGE_MAX (60)                      TH_RL_MANAGE_WINDOW (60 s)
 *               (joins, leaves, roles, removals, bans and unbans, channels
 *               made, a community's settings, reports resolved: each one an
 *               event to every reader of the community, and some a
 *               notification to somebody else)
 *   read        TH_RL_READ_MAX (600)                       TH_RL_READ_WINDOW (60 s)
 *               (read markers and notifications marked read: each an event
 *               to the user's other devices; the web client moves a marker
 *               at most twice a second a tab, for its open channel)
 *   setting     TH_RL_SETTING_MAX (60)                     TH_RL_SETTING_WINDOW (60 s)
 *               (a community's notification level, leaving a group DM,
 *               unblocking, removing a push subscription: undoing a block or
 *               a subscription has a budget apart from making them)
 *   message     TH_RL_MSG_INTERVAL_MS (100), TH_RL_MSG_BURST (30): a token
 *               bucket, 10/s with a burst of 30, shared by REST and MQTT
 *               through one Redis key, th:rl:msg:<user_id> (the broker
 *               plugin takes from the same key)
 *   distinct reaction kinds on one post: TH_REACTION_KINDS_MAX (50)
 *   channels of one community: TH_CHANNELS_MAX (500)
 *
 * The fixed windows count in Redis under th:rl:<kind>:<user_id> (lib/
 * ratelimit rl_hit); a hit over the limit is answered 429 rate_limited with
 * Retry-After.  When Redis cannot answer, the write goes through (logged,
 * counted in limits_unavailable_total): Redis holds rebuildable state only,
 * and posting, commenting and chatting keep working through its outage like
 * every other route backed by PostgreSQL; the limits hold again as soon as
 * it is back. */
#ifndef TH_USERLIMITS_H
#define TH_USERLIMITS_H

#include "http.h"

enum limit_kind {
	LIMIT_POST,
	LIMIT_COMMENT,
	LIMIT_COMMUNITY,
	LIMIT_REACTION,
	LIMIT_CALL,
	LIMIT_DM,
	LIMIT_BLOCK,
	LIMIT_PUSH,
	LIMIT_SEARCH,
	LIMIT_EDIT,
	LIMIT_REPORT,
	LIMIT_MANAGE,
	LIMIT_READ,
	LIMIT_SETTING,
	LIMIT_MESSAGE,
	LIMIT_KINDS
};

struct limits {
	long max[LIMIT_KINDS]; /* fixed-window kinds: writes per window */
	long window_s[LIMIT_KINDS];
	long msg_interval_ms;    /* LIMIT_MESSAGE: one token every interval */
	long msg_burst;          /* ... at most this many in a row */
	long reaction_kinds_max; /* distinct reaction kinds on one post */
	long channels_max;       /* channels of one community */
};

extern struct limits limits;

/* Reads the settings above (exits on a malformed value) and registers the
 * metrics counter (call after metrics_open, i.e. in an app's init). */
void limits_init(void);

/* The Redis key of a user's budget of kind, into buf ("th:rl:msg:42"). */
const char *limits_key(char *buf, size_t size, enum limit_kind kind, int64_t uid);

/* Takes one write of kind from the caller's (req->user_id) budget, an
 * anonymous caller's from its address's (an IPv6 one's /64): 0 when
 * allowed (also when Redis cannot answer, see above), -1 when refused with
 * 429 rate_limited + Retry-After (replied). */
int limits_take_or_reply(struct http_req *req, enum limit_kind kind);

#endif
