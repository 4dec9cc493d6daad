/* The bridge's internal interfaces.
 *
 * One thread, one loop (main.c): read MQTT packets into a batch, commit the
 * batch to PostgreSQL, publish receipts, and only then write to the broker —
 * which is when the PUBACKs libmosquitto queued for the batch leave.  A
 * crash before the commit leaves the messages unacknowledged in the broker's
 * persistent session, which redelivers them; inserts are idempotent by id. */
#ifndef TH_BRIDGE_H
#define TH_BRIDGE_H

#include <stddef.h>
#include <stdint.h>

struct mosquitto;

#define BRIDGE_BATCH_HARD_MAX 5000

struct chat_msg {
	char id[37];
	int64_t channel_id;
	int64_t sender_id;
	char *body;          /* owned */
	char reply_to[37];   /* "" when none */
	uint64_t received_us;
};

struct batch {
	struct chat_msg msgs[BRIDGE_BATCH_HARD_MAX];
	size_t n;
};

struct bridge_stats {
	int persisted, dropped, duplicates, batches, batch_messages, lag_ms, events,
		receipts;
};
extern struct bridge_stats bstats; /* metrics counter indexes */

/* store.c: validates and queues one chat publish (topic, payload); returns 0
 * when queued, -1 when dropped as invalid (counted). */
int store_accept(struct batch *b, const char *topic, const void *payload, int len, int dup);
/* Commits the batch in one transaction and publishes one receipt per sender.
 * 0 on success (batch emptied), -1 when PostgreSQL failed (batch kept). */
int store_flush(struct batch *b, struct mosquitto *mosq);
void store_clear(struct batch *b);

/* relay.c: drains event_outbox in id order and publishes each event.
 * Returns the number published, or -1 on a database error. */
int relay_drain(struct mosquitto *mosq);

/* calls.c: the user's last connection closed: leave their ongoing calls.
 * 1 when something changed (events queued), 0 when nothing, -1 on error. */
int calls_user_offline(int64_t user_id);

uint64_t bridge_now_us(void);

#endif
