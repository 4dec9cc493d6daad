/* mwatch: notices that Redis lost the membership mirror (a restart without
 * persistence, a flush, a failover to an empty replica) and has it rebuilt,
 * without an admin.
 *
 * scripts/mirror-rebuild writes the marker th:mirror:epoch in the same
 * MULTI/EXEC as the mirror (memberships, channels, and the participants of
 * calls not ended), so "marker present" means "mirror complete" — on the
 * server data it names: the marker is "<replid>/<time>-<pid>", and a marker
 * of another replication id than the server's (a failover promoted a
 * replica, which may lack the old master's last updates) counts as missing.
 * On a Cluster the marker names every master's id (cache_data_ids()): the
 * mirror's keys are on every master, and any of them may fail over.
 * Once a second (TICK) the plugin GETs the marker.  When it is missing, or
 * Redis does not answer, the ACL reads memberships from PostgreSQL instead
 * (acl.c, cached like the Redis answers and bounded by each client's lookup
 * budget), and the rebuild command (TH_MIRROR_REBUILD_CMD, run with the
 * argument --if-missing) is started as a child process, at most one at a time and at most once every
 * MWATCH_RETRY_S.
 *
 * Why a child process and not the broker thread: a rebuild reads every
 * membership (seconds for millions of rows) and the broker has one thread;
 * a separate process also has its own connections, so nothing of the
 * plugin's state is shared, and it is the same tested, atomic rebuild an
 * admin runs by hand.  Several brokers may notice at once: the script takes
 * a lock in Redis, so one of them rebuilds. */
#ifndef TH_MWATCH_H
#define TH_MWATCH_H

void mwatch_init(const char *rebuild_cmd);
void mwatch_close(void);
void mwatch_tick(void);
/* 1 when the mirror in Redis is complete and may be trusted. */
int mwatch_mirror_ok(void);

/* Rebuilds started (tests, logs). */
extern unsigned long mwatch_rebuilds;

#endif
