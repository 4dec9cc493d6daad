/* quota: what one client or one user may cost the broker (issue 17, API.md
 * "Limits every route and topic obeys").
 *
 *   - subscriptions per client id (TH_MQTT_MAX_SUBS, 200): a set of the
 *     client's granted filters, so re-subscribing one filter does not count
 *     twice and an unsubscribe gives its slot back; kept across reconnects of
 *     a persistent session (the broker keeps its subscriptions too);
 *   - Redis lookups a user's clients may cause (TH_MQTT_LOOKUPS_PER_S, burst
 *     TH_MQTT_LOOKUP_BURST): past it, filters are refused without a lookup;
 *   - refused filters per user per second (TH_MQTT_REFUSED_PER_S): past it
 *     the client is closed, mid-packet, and the user's new connections are
 *     refused for TH_MQTT_KICK_COOLDOWN_MS (reconnecting must not reset the
 *     budgets: they are kept per user, not per connection);
 *   - connections opened per user (TH_MQTT_CONNECT_INTERVAL_MS / _BURST: one
 *     a second, 30 in a row; past it CONNECT is refused, not authorized);
 *   - publishes per user: chat (TH_RL_MSG_INTERVAL_MS / TH_RL_MSG_BURST, the
 *     same Redis bucket th:rl:msg:<uid> as the REST routes), typing and
 *     signal (local buckets only).
 *
 *   - a community's chat rules (lib/modrule.h: slow mode, content limits),
 *     for members below moderator: quota_chat_rules_ok().
 *
 * Everything is decided from memory in O(1); Redis is touched only by
 * quota_tick(), bounded per call, and by slow mode: one SET per chat publish
 * of a member in a community that has it (the clock REST shares; the rules
 * themselves come from acl.c's cache). */
#ifndef TH_QUOTA_H
#define TH_QUOTA_H

#include <stdint.h>

#include "topic.h"

struct mosquitto;
struct quota_client;

int quota_init(void);
void quota_close(void);

/* The state of this connection's client id (created on first use), or NULL
 * when out of memory (callers then refuse). */
struct quota_client *quota_client(struct mosquitto *client);

enum quota_sub { QUOTA_SUB_OK = 0, QUOTA_SUB_FULL, QUOTA_SUB_KICK };

/* Before the ACL decision of one filter: QUOTA_SUB_OK (already held, or a
 * slot is free), QUOTA_SUB_FULL (refuse), QUOTA_SUB_KICK (refused too often:
 * close the client).  *fh receives the filter's key for the calls below. */
enum quota_sub quota_sub_admit(struct quota_client *cl, struct mosquitto *client, int64_t uid,
			       const char *filter, uint64_t *fh);
/* 1 when user uid may still cause a Redis lookup now. */
int quota_lookup_ok(int64_t uid);
/* Books n lookups a decision caused. */
void quota_lookup_spent(int64_t uid, unsigned long n);
/* The filter was granted: it holds a slot until unsubscribed.  -1 when out
 * of memory (then refuse it: an uncounted filter would be a free slot). */
int quota_sub_granted(struct quota_client *cl, uint64_t fh);
/* A filter of uid was refused: 1 when the user passed the refusal bound
 * (close the client; the user's new connections are refused for
 * TH_MQTT_KICK_COOLDOWN_MS). */
int quota_sub_refused(int64_t uid);
/* A connection of uid passed the token check: 0 (refuse it) while the user
 * is cooling down after such a close, or over its connection rate
 * (TH_MQTT_CONNECT_INTERVAL_MS, TH_MQTT_CONNECT_BURST: one a second, 30 in a
 * row): each connection and each close is a presence change in every one of
 * the user's communities and a session for the broker to hold, so a client
 * cycling connections must not get them at the rate it can open sockets.
 * Else a token is taken and 1 returned. */
int quota_connect_ok(int64_t uid);
/* UNSUBSCRIBE of a filter: its slot is free again. */
void quota_unsub(struct quota_client *cl, const char *filter);

/* A user connection passed BASIC_AUTH. */
void quota_connect(struct mosquitto *client);
/* 1 when another connection with this client id is live (a takeover). */
int quota_takeover(struct mosquitto *client);

/* The connection closed.  session_ends: its subscriptions end with it (the
 * broker drops them), so the state is freed; otherwise it is kept for
 * TH_MQTT_SESSION_TTL_S. */
void quota_disconnect(struct mosquitto *client, int session_ends);

/* A user's publish (or will) on a topic of kind k that the ACL allowed: 1
 * allowed (a token taken), 0 over the rate (drop). */
int quota_publish_ok(int64_t uid, enum topic_kind k);
/* The same question without taking a token: lets the ACL check drop a
 * publish over the rate before it parses the payload or looks anything up. */
int quota_publish_may(int64_t uid, enum topic_kind k);

/* A chat publish of uid on channel ch under its community's rules
 * (lib/modrule.h): content limits, then slow mode (the Redis clock REST
 * shares, th:slow:<ch>:<uid>).  1 allowed, 0 dropped (counted in
 * quota_limit_drops or quota_slow_drops; also when the rules cannot be
 * read).  After quota_publish_ok(), for a publish that passed the ACL. */
int quota_chat_rules_ok(int64_t uid, int64_t ch, const void *payload, uint32_t len);

/* Syncs the chat buckets with Redis (at most every 200 ms, at most
 * QUOTA_SYNC_MAX users per call) and drops expired state (once a minute). */
void quota_tick(void);

/* Counters for tests and logs: quota_drops over the rate; quota_slow_drops
 * by slow mode, quota_limit_drops by a community's content limits. */
extern unsigned long quota_kicks, quota_drops, quota_subs_full, quota_slow_drops, quota_limit_drops,
	quota_connects_refused;

#endif
