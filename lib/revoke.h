/* revoke: which sessions are revoked, known to every worker within a second.
 *
 * PostgreSQL (sessions.revoked_at) is the truth.  Redis holds a hot copy: the
 * sorted set th:{revoked} (member: session id, score: revocation time in ms)
 * and th:{revoked}:epoch, a marker set when the set was (re)built from
 * PostgreSQL, naming the server data it was built on ("<replid>/<ms>-<pid>",
 * replid: INFO's master_replid, cache_data_id()).  Each worker keeps a local
 * copy and refreshes it
 *   - at most once a second (so another host's revocation arrives within 1 s),
 *   - at once when the host-wide sequence file ($TH_VAR_DIR/run/revoke.seq,
 *     mapped by every worker of every pool) moved: a revocation on this host
 *     is seen by the very next request anywhere on the host.
 * A missing epoch (Redis restarted or flushed) makes one worker (the one
 * that takes the lock th:{revoked}:rebuild; the others check PostgreSQL
 * until its marker is there) rebuild the set from PostgreSQL, so a flush never revives a revoked
 * session.  So does an epoch made on other data than the server's: after a
 * failover the promoted replica (a new replication id) has the marker but may
 * lack the last revocations written to the old master, so there the marker
 * proves nothing; the set is rebuilt from PostgreSQL (into the worker's local
 * copy too) before Redis is trusted again.  And a process whose connection
 * moves to other data (it was on the old master, which Sentinel demotes only
 * some time after the promotion, and may have written there meanwhile) sends
 * again the revocations it published lately and those PostgreSQL committed in
 * the last 30 s, scored now so that incremental readers see them.
 * While Redis is unreachable, sessions are checked in PostgreSQL
 * (each answer kept for one second); when neither answers, the caller cannot
 * decide and must refuse.
 *
 * The local set holds at most TH_REVOKE_MAX_ENTRIES (default 2^20) live
 * revocations.  When a revocation does not fit, none is dropped silently:
 * until every token it could stop has expired, any session not found in the
 * set is checked in PostgreSQL (as while Redis is out), so a revoked session
 * is still refused and, with PostgreSQL down too, nothing is let through. */
#ifndef TH_REVOKE_H
#define TH_REVOKE_H

#include <stdint.h>

/* seq_path: the host-wide sequence file (NULL: none, refresh by time only).
 * ttl_s: access token lifetime: a revocation older than that is forgotten,
 * since every token it could stop has expired. */
int revoke_init(const char *seq_path, long ttl_s);
void revoke_close(void);

/* 0: not revoked; 1: revoked; -1: cannot decide (Redis and PostgreSQL down). */
int revoke_check(int64_t session_id);

/* The same with the time given (CLOCK_REALTIME in ms, revoke_now_ms()): a
 * caller checking thousands of sessions in one pass (the broker plugin's
 * once-a-second sweep) reads the clock once, not once a session. */
int revoke_check_at(int64_t session_id, long long now_ms);
long long revoke_now_ms(void);

/* Publishes a revocation already committed to PostgreSQL: Redis, the local
 * copy and the host sequence.  Redis failures are logged, not returned: the
 * other workers fall back to PostgreSQL while Redis is out. */
void revoke_publish(int64_t session_id);

/* How many times this process rebuilt Redis's copy from PostgreSQL (after
 * a flush or a failover only one worker of all does: th:{revoked}:rebuild,
 * SET NX PX, is its lock; see revoke.c). */
unsigned long revoke_rebuilds(void);

/* Forces the next revoke_check() to refresh (tests, after a flush). */
void revoke_invalidate(void);

#endif
