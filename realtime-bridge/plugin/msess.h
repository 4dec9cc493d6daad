/* msess: at most TH_MQTT_MAX_SESSIONS_PER_USER (10) client ids a user keeps
 * a broker session for.  A connection with clean session (MQTT 3.1.1) or
 * clean start (MQTT 5) false leaves a session behind when it closes: its
 * subscriptions, kept by the broker for persistent_client_expiration (1 d,
 * conf/mosquitto/broker.conf.in; TH_MQTT_SESSION_KEEP_S must say the same).
 * A client that opens every connection under a new client id would leave
 * 86,400 of them a day at the connection rate (1/s), a few KiB each: the
 * broker's memory, one user at a time.
 *
 * The client ids are kept per user in Redis, th:msess:{u<uid>} (a zset:
 * client id -> ms of Redis TIME it was last connected or left), over every
 * broker.  A new id past the cap is refused at CONNECT (0x87, as every
 * BASIC_AUTH refusal in 2.0.11); one in the set (a session resumed, a
 * takeover) never is; ids older than the keep are dropped first.  MQTT 5
 * clients with clean start false are counted even when their session
 * expiry is 0 (2.0.11 does not show plugins the interval).  Redis not
 * answering: admitted (the limit is a bound on abuse, not on service), and
 * logged. */
#ifndef TH_MSESS_H
#define TH_MSESS_H

#include <stdint.h>

struct mosquitto;

void msess_init(long max_per_user, long keep_s);

/* 1 when client (user uid, clean session false) may connect, 0 when it is
 * a new session past the user's cap.  Clean connections: 1, no Redis. */
int msess_admit(struct mosquitto *client, int64_t uid, const char *client_id);
/* The client's connection closed: its session's time starts now. */
void msess_left(struct mosquitto *client, int64_t uid);

/* New sessions refused (the broker's log). */
extern unsigned long msess_refused;

#endif
