/* conns: the broker's authenticated user connections, presence (counted
 * over every broker by presence.c), and the periodic check that closes
 * connections whose token expired or whose session was revoked. */
#ifndef TH_CONNS_H
#define TH_CONNS_H

#include <stdint.h>
#include <time.h>

struct mosquitto;

/* broker_id: this broker's name for presence (TH_BROKER_ID); lease_ms: its
 * presence lease (presence.h); grace_ms: how long a user's last closed
 * connection still counts (grace.h, 0: none).  -1 on a bad id or no
 * memory. */
int conns_init(const char *broker_id, long lease_ms, long grace_ms);
/* Ends this broker's presence lease: others reap its users at once. */
void conns_close(void);

/* A user connection passed BASIC_AUTH.  Counts it for presence: the user's
 * first live connection on any broker publishes "online" to each of their
 * communities.  limit > 0: -1 (not added) when the user already has `limit`
 * connections over every broker (presence_connect); 0: no limit (takeover
 * of one's own client id).  -1 also when memory is short. */
int conns_add(struct mosquitto *client, const char *client_id, int64_t uid, int64_t sid,
	      int64_t expires_at, long limit);
/* The connection is gone (DISCONNECT): the user's last one on any broker
 * publishes "offline", after the grace (grace.h) unless they are back.  Unknown clients (service account, refused ones) are
 * ignored. */
void conns_remove(struct mosquitto *client);

/* Presence upkeep (every call) and the sweep that closes connections whose
 * token expired or whose session is revoked (at most once a second).
 * Called from TICK. */
void conns_tick(time_t now);

/* Live connections of uid on this broker. */
long conns_of_user(int64_t uid);
/* 1 when client is a live user connection (not an offline session). */
int conns_is_live(struct mosquitto *client);

/* Live user connections / distinct users online (metrics, tests). */
size_t conns_count(void);
size_t conns_users(void);

#endif
