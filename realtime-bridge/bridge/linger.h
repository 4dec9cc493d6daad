/* linger: when a batch of chat messages goes to PostgreSQL.
 *
 * A batch closes when its stream pauses (no message for wait_ms), when it
 * has lingered linger_ms since its first message, or when it is full.  A
 * lone message waits wait_ms, as before; a steady stream fills one batch
 * for up to linger_ms instead of a transaction per few messages.  Each
 * transaction costs PostgreSQL a fixed part (the call, the channel lock,
 * the commit) and costs the hub a receipt per sender and an `unread` event
 * per sender and channel: under load, batches of a few messages spent the
 * CPU the messages needed (docs/benchmarks.md, realtime-100k). */
#ifndef TH_BRIDGE_LINGER_H
#define TH_BRIDGE_LINGER_H

#include <stddef.h>
#include <stdint.h>

struct linger_rule {
	int wait_ms;   /* the pause that closes a batch */
	int linger_ms; /* the longest a batch stays open, >= wait_ms */
	int max;       /* messages a batch holds */
};

/* Milliseconds until a batch of n messages, the first received at first_us
 * and the last at last_us (CLOCK_MONOTONIC, µs), is due at now_us: 0 when
 * due (or n is 0: nothing to wait for). */
int linger_left_ms(const struct linger_rule *l, size_t n, uint64_t first_us, uint64_t last_us,
		   uint64_t now_us);

#endif
