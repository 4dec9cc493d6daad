/* presence: who is online, counted in Redis across every broker (hub and
 * edges), so that "online" is announced at a user's first connection
 * anywhere and "offline" at the last one anywhere, and the connections-per-
 * user limit counts all brokers.
 *
 * Each running broker is an *instance* "<broker_id>/<epoch>" (TH_BROKER_ID,
 * default b0; the epoch is new at every start, so counts of a crashed run
 * never mix with the new run's).  Keys (Redis Cluster: per-user keys spread;
 * the small registry and the per-instance user sets share one slot):
 *
 *   th:presence:{u<uid>}                 hash  instance -> connections of uid
 *                                              there (a field at 0 is deleted);
 *                                              "~<instance>" -> how many of
 *                                              them linger (presence_linger)
 *   th:presence:{brokers}:live           zset  instance -> lease end (ms of
 *                                              Redis TIME); renewed every
 *                                              lease/5 by the instance itself
 *   th:presence:{brokers}:users:<inst>   set   uids that may have a field of
 *                                              inst (added before the field)
 *   th:presence:{brokers}:reap:<inst>    string the instance reaping inst
 *                                              (a lock, PX = lease)
 *
 * Every change of a user's count is one Lua script (EVALSHA) on the user's
 * key: it sets this instance's field to the local count and returns the
 * total before and after, so the 0->1 and 1->0 transitions are decided
 * atomically by Redis, exactly once whatever the number of brokers.
 * Setting (not adding) keeps a retry or a resync idempotent.
 *
 * A broker that dies stops renewing; once its lease ended, a live broker's
 * tick claims it (the reap lock), sets its field to 0 for each user of its
 * set, a bounded batch per tick, announces "offline" for those left with 0
 * anywhere, then removes the instance.  A broker that restarts with the same
 * id marks its old instances dead when it registers.  A broker that lost its
 * lease (Redis down or unreachable longer than the lease) stops writing when
 * its own clock says the lease is over, and on the next renewal either
 * revives the instance (nobody reaped it) or registers a new one; either
 * way it then writes all its counts again (resync).  A broker reaps others
 * only after it has itself held its lease for a whole lease period, so after
 * a Redis outage every broker gets the chance to renew first.
 *
 * Redis down: nothing blocks longer than the cache module's timeout, and
 * while it fails calls fail at once (cache backoff).  Counts are kept
 * locally and marked dirty; "online" is still announced at a local 0->1 (a
 * repeated "online" is harmless), "offline" only when Redis decides it (a
 * false "offline" would end the user's calls).  The connection limit falls
 * back to the local count.
 *
 * Not thread-safe: the broker runs everything on one thread. */
#ifndef TH_PRESENCE_H
#define TH_PRESENCE_H

#include <stdint.h>

#define PRESENCE_BROKER_ID_MAX 32

struct presence;

/* Called when uid goes online (first connection anywhere) or offline (last
 * one anywhere gone, or reaped). */
typedef void (*presence_announce_fn)(int64_t uid, int online, void *arg);

struct presence_cfg {
	const char *broker_id; /* 1..32 of [A-Za-z0-9_-] */
	long lease_ms;         /* lease length (>= 200); renewed every lease/5 */
	presence_announce_fn announce;
	void *arg;
	const char *key_prefix; /* NULL: "th:presence" (tests keep their own) */
};

enum presence_admit {
	PRESENCE_OK = 0, /* counted */
	PRESENCE_FULL,   /* the user has `limit` connections already: not counted */
	PRESENCE_NOMEM,  /* not counted */
};

/* Does not touch Redis (the first tick registers).  NULL with a log line
 * when the broker id is invalid or memory is short. */
struct presence *presence_open(const struct presence_cfg *cfg);
/* release: the broker is stopping cleanly; its lease is ended now so that
 * another broker reaps its users at once.  Without it (tests: a crash) Redis
 * is not touched.  NULL is fine. */
void presence_close(struct presence *p, int release);

/* A new connection of uid on this broker.  limit > 0: refused (PRESENCE_FULL,
 * nothing counted) when the user already has `limit` live connections,
 * counted over every broker (brokers known dead not counted); by the local
 * count alone when Redis cannot answer.  limit 0: no limit (a takeover of
 * one's own client id). */
enum presence_admit presence_connect(struct presence *p, int64_t uid, long limit);
/* A connection of uid on this broker is gone. */
void presence_disconnect(struct presence *p, int64_t uid);
/* uid's connection here that closed lingers (the broker's presence grace):
 * it stays in the count, so nobody sees uid leave, but it does not count
 * against uid's limit on other brokers (a tab reloaded onto another broker
 * is not refused for its own ghost).  One lingering connection a user here
 * at most. */
void presence_linger(struct presence *p, int64_t uid);
/* A new connection of uid here takes the lingering one's place: the count
 * does not move, the limit is checked as presence_connect() does (FULL:
 * nothing changed, it still lingers). */
enum presence_admit presence_unlinger(struct presence *p, int64_t uid, long limit);
/* The lingering connection of uid here is gone (its grace ended). */
void presence_linger_gone(struct presence *p, int64_t uid);

/* Renewal, resync of dirty users, reaping of dead brokers: each bounded
 * (a few ms at most).  Call it often (every broker TICK). */
void presence_tick(struct presence *p);

/* Connections of uid on this broker. */
long presence_local(struct presence *p, int64_t uid);
/* Users with a connection here. */
long presence_users(struct presence *p);
/* "<broker_id>/<epoch>" (logs, tests). */
const char *presence_instance(struct presence *p);
/* 1 when this broker's counts are in Redis (registered, lease held, nothing
 * left to resync). */
int presence_synced(struct presence *p);

/* For a process that is no broker (th-pusher): does uid have a connection
 * on a live broker?  The user's hash, with each instance's lease in the
 * registry checked against Redis TIME (a crashed broker's counts not yet
 * reaped do not count).  key_prefix NULL: "th:presence".  1, 0, or -1 when
 * Redis cannot answer. */
int presence_online(int64_t uid, const char *key_prefix);

#endif
