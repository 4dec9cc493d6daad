/* events: server events for real-time clients, written by the apps inside
 * the transaction of the change, so an event exists exactly when its change
 * committed: a row in event_outbox (drained in order by the bridge, which
 * publishes it to MQTT) plus pg_notify('townhall_events', payload) to wake
 * the bridge at once.  docs/events.md lists every type and payload. */
#ifndef TH_EVENTS_H
#define TH_EVENTS_H

#include <stdint.h>

#include "http.h"

struct json_object;

#define EVENTS_CHANNEL "townhall_events"

/* Queues an event in the current transaction:
 *   {"type": type, "community_id": community_id, <k1>: v1, <k2>: v2}
 * k1/k2 may be NULL.  Returns 0, or -1 with the error replied. */
int events_emit(struct http_req *req, const char *type, int64_t community_id,
		const char *k1, int64_t v1, const char *k2, int64_t v2);

/* Queues an arbitrary event object (must have "type"; consumed), up to
 * 256 KiB.  Over 7 KiB, the NOTIFY (limited to 8000 bytes) carries the event
 * without message.body plus "outbox_id"; the outbox row has it whole.  0, or
 * -1 with the error replied. */
int events_emit_json(struct http_req *req, struct json_object *event);

#endif
