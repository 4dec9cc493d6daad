/* events: server events for real-time clients, written by the apps as
 * pg_notify('townhall_events', payload) inside the transaction of the change,
 * so an event exists exactly when its change committed.  The bridge LISTENs
 * and relays them to MQTT (docs/events.md lists every type and payload). */
#ifndef TH_EVENTS_H
#define TH_EVENTS_H

#include <stdint.h>

#include "http.h"

#define EVENTS_CHANNEL "townhall_events"

/* Queues an event in the current transaction:
 *   {"type": type, "community_id": community_id, <k1>: v1, <k2>: v2}
 * k1/k2 may be NULL.  Returns 0, or -1 with the error replied. */
int events_emit(struct http_req *req, const char *type, int64_t community_id,
		const char *k1, int64_t v1, const char *k2, int64_t v2);

#endif
