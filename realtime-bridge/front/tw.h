/* tw: a hashed timing wheel of intrusive nodes — a worker's timeouts.
 *
 * A worker holds thousands of connections whose deadlines are minutes away
 * (the idle check is 1.5 x a keepalive the client picks).  A pass over all
 * of them twice a second was 7 % of the front's samples in a broadcast to
 * 100,000 clients, and most of its cost at idle.  The wheel hands back only
 * the nodes whose slot has come; the owner checks each against the deadline
 * it really has now and arms it again if that moved on (an idle deadline
 * moves with every byte the client sends, which the wheel is never told).
 *
 * A node armed for a time past the wheel's span (TW_SLOTS ticks) comes back
 * early, once a turn, and is armed again: correct, only a visit more.  A
 * node comes back at most one tick after its time, never before its tick. */
#ifndef TH_FRONT_TW_H
#define TH_FRONT_TW_H

#include <stdint.h>

#define TW_SLOTS 1024 /* a power of two */

struct tw_node {
	struct tw_node *next, *prev;
	int32_t where; /* -1 not armed, a slot, or TW_SLOTS: due, not yet taken */
};

struct tw {
	struct tw_node *head[TW_SLOTS + 1]; /* the last: due, waiting for tw_next */
	int64_t tick_ms, cur;               /* cur: the first tick not yet expired */
};

/* An empty wheel of tick_ms (> 0) ticks, starting at now (ms). */
void tw_init(struct tw *w, int64_t tick_ms, int64_t now);

void tw_node_init(struct tw_node *n);

/* (Re)arms n for time due (ms); a due already past comes at the next expiry. */
void tw_arm(struct tw *w, struct tw_node *n, int64_t due);

/* Disarms n; nothing when it is not armed. */
void tw_cancel(struct tw *w, struct tw_node *n);

/* Moves every node of the ticks up to now to the due list. */
void tw_expire(struct tw *w, int64_t now);

/* Takes one node off the due list (disarmed), or NULL.  The owner may arm
 * or cancel any node meanwhile, this one and those still due included. */
struct tw_node *tw_next(struct tw *w);

#endif
