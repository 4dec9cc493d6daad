/* events: server events for real-time clients, written by the apps inside
 * the transaction of the change, so an event exists exactly when its change
 * committed: a row in event_outbox (drained in order by the bridge, which
 * publishes it to MQTT) plus pg_notify(EVENTS_CHANNEL, payload) to wake the
 * bridge at once.  docs/events.md lists every type and payload.  A request
 * queues its events with the web library's events_emit() and
 * events_emit_json() (fcgi-apps/lib/reply.h), which reply on failure. */
#ifndef TH_EVENTS_H
#define TH_EVENTS_H

#define EVENTS_CHANNEL "townhall_events"
#define EVENTS_MAX_BYTES (256 * 1024) /* the outbox row; NOTIFY gets a digest */

/* Queues payload (a JSON object with "type", at most EVENTS_MAX_BYTES) in the
 * current transaction.  Over 7 KiB, the NOTIFY (limited to 8000 bytes)
 * carries the event without message.body plus "outbox_id"; the outbox row
 * has it whole.  0, or -1 (db_last_err() and db_last_error() say why). */
int events_queue(const char *payload);

#endif
