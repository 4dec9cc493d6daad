/* grace: a user's last connection on this broker lingers in the presence
 * count for a short grace (TH_MQTT_PRESENCE_GRACE_MS, default 2000) after
 * it closed, so that "offline" is announced only when they are not back by
 * then.  A tab reload or a phone changing networks closes the user's last
 * connection and opens a new one a moment later: counted at once, that is
 * an "offline" and an "online" retained to each of their communities (up
 * to 1,000) and delivered to every member watching, and th-bridge leaves
 * the user's calls on the "offline".
 *
 * conns.c holds one closed connection a user here instead of taking it off
 * the count (presence_disconnect); a new connection of the user on this
 * broker takes its place (no presence_connect: the count never moved, so
 * nobody saw them leave; "online" is said again, for communities joined
 * since: clients reconnect to appear there); once the grace ended, conns.c takes it off the
 * count, and presence.c announces "offline" if it was the user's last
 * connection on any broker.  Because the count in Redis holds it, a crash
 * during the grace loses nothing: the reaper of the broker's instance
 * counts it out after the lease as it does every connection.  A second
 * connection of a user closing while one lingers, or any past GRACE_MAX
 * users, is taken off the count at once, as before. */
#ifndef TH_GRACE_H
#define TH_GRACE_H

#include <stddef.h>
#include <stdint.h>

#define GRACE_MAX 200000

/* grace_ms 0: no grace (every call below holds nothing).  -1: no memory. */
int grace_init(long grace_ms);
void grace_close(void);

/* A connection of uid closed at now_ms: 1 when it lingers (the caller
 * leaves the count as it is), 0 when the caller takes it off the count now
 * (no grace, one of uid's lingers already, table full, no memory). */
int grace_hold(int64_t uid, long long now_ms);
/* 1 when a connection of uid lingers here. */
int grace_lingers(int64_t uid);
/* uid connected: 1 when a lingering connection of theirs takes the new
 * one's place (the caller does not count it again), 0 otherwise. */
int grace_cancel(int64_t uid);
/* Up to max users whose lingering connection's grace ended by now_ms into
 * out, removed from the table (the caller takes each off the count). */
size_t grace_due(long long now_ms, int64_t *out, size_t max);
/* Users with a lingering connection (tests, metrics). */
size_t grace_held(void);

#endif
