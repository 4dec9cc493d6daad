/* conns: the broker's authenticated user connections, presence, and the
 * periodic check that closes connections whose token expired or whose
 * session was revoked. */
#ifndef TH_CONNS_H
#define TH_CONNS_H

#include <stdint.h>
#include <time.h>

struct mosquitto;

int conns_init(void);
void conns_close(void);

/* A user connection passed BASIC_AUTH.  Counts it for presence: the user's
 * first live connection publishes "online" to each of their communities. */
void conns_add(struct mosquitto *client, const char *client_id, int64_t uid, int64_t sid,
	       int64_t expires_at);
/* The connection is gone (DISCONNECT): the user's last one publishes
 * "offline".  Unknown clients (service account, refused ones) are ignored. */
void conns_remove(struct mosquitto *client);

/* Closes connections whose token expired or whose session is revoked.
 * Called from TICK; does the work at most once a second. */
void conns_tick(time_t now);

/* Live connections of uid. */
long conns_of_user(int64_t uid);
/* 1 when client is a live user connection (not an offline session). */
int conns_is_live(struct mosquitto *client);

/* Live user connections / distinct users online (metrics, tests). */
size_t conns_count(void);
size_t conns_users(void);

#endif
