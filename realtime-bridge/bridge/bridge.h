/* The bridge's internal interfaces.
 *
 * One thread, one loop (main.c), pipelined: while one batch's transaction
 * is out at PostgreSQL (db_tx_*), the next batch is read from the broker.
 * The gate (gate.c) holds every PUBACK libmosquitto writes until the
 * message it answers, and every message before it, is committed: a crash
 * before a commit leaves the messages unacknowledged in the broker's
 * persistent session, which redelivers them; inserts are idempotent by id.
 * A batch PostgreSQL refuses for one of its messages is stored in parts,
 * that message quarantined (main.c out_failed, split.h). */
#ifndef TH_BRIDGE_H
#define TH_BRIDGE_H

#include <stddef.h>
#include <stdint.h>

#include "topic.h"

struct mosquitto;
struct db_res;

/* QoS 1 messages whose PUBACK is held: the gate lets no more through */
#define BRIDGE_QOS1_MAX 5000
/* QoS 0 chat in one batch (a client may publish chat at QoS 0: nothing flow-
 * controls it toward us, and it is not acknowledged): past it, dropped */
#define BRIDGE_QOS0_MAX 1000
/* so that a batch always has room for every QoS 1 message the gate may let
 * through beside its QoS 0 ones: a QoS 1 message never dropped for room (it
 * would be acknowledged with the batch and lost) */
#define BRIDGE_BATCH_HARD_MAX (BRIDGE_QOS1_MAX + BRIDGE_QOS0_MAX)

struct chat_msg {
	char id[37];
	int64_t channel_id;
	int64_t sender_id;
	char *body;        /* owned */
	char reply_to[37]; /* "" when none */
	uint64_t received_us;
	/* its place among this connection's QoS 1 messages (gate_received()):
	 * its own index for QoS 1, the index the next QoS 1 message will have
	 * for QoS 0 (so every message before it is settled when it is first) */
	uint64_t rx;
	char origin[TOPIC_ORIGIN_MAX + 1]; /* the edge it came in through, "" unknown (topic.h) */
};

struct batch {
	struct chat_msg msgs[BRIDGE_BATCH_HARD_MAX];
	size_t n;
	size_t n_qos0; /* of them, QoS 0 (at most BRIDGE_QOS0_MAX) */
	uint64_t conn; /* the broker connection it was read on */
};

struct bridge_stats {
	int persisted, dropped, duplicates, batches, batch_messages, lag_ms, events, receipts,
		awaiting_commit, refused_id_taken, reply_to_cleared, events_retried, events_refused,
		events_unrouted, events_superseded, events_deferred, presence, quarantined,
		presence_cleared, presence_ghosts;
};
extern struct bridge_stats bstats; /* metrics counter indexes */

/* store.c: validates and queues one chat publish (topic, payload); returns 0
 * when queued, -1 when dropped as invalid (counted). */
int store_accept(struct batch *b, const char *topic, const void *payload, int len, int dup);
/* Sends messages [from, to) of the batch to PostgreSQL as one transaction
 * (db_tx_send): 0 when sent, -1 when PostgreSQL failed (db_last_error(),
 * db_last_sqlstate()).  The batch stays as it is until done. */
int store_send(const struct batch *b, size_t from, size_t to);
/* The transaction of messages [from, to) committed (r: its result, freed
 * here): counts, and (mosq not NULL) publishes per sender one receipt of the
 * ids stored as theirs and one notice of those refused (the id is another
 * message's).  The batch stays: the caller clears it once all of it is
 * done. */
void store_done(const struct batch *b, size_t from, size_t to, struct db_res *r,
		struct mosquitto *mosq);
/* Message m failed on its own (sqlstate, error: why, copied by the caller
 * from db_last_*(), which this call overwrites): stored as it is into
 * message_quarantine, counted, logged, and (mosq not NULL) its sender told
 * {"type":"refused","reason":"store_failed","ids":[id]} as an id_taken
 * refusal is.  0 when quarantined (the message is settled), -1 when the
 * insert failed (then it is neither stored nor quarantined). */
int store_quarantine(const struct chat_msg *m, const char *sqlstate, const char *error,
		     struct mosquitto *mosq);
void store_clear(struct batch *b);
/* One column of the batch as a PostgreSQL array literal of quoted, escaped
 * text elements ("{\"a\",NULL}"), the parameters of store_send(): field 0
 * id, 1 channel_id, 2 sender_id, 3 body, 4 reply_to (NULL when none).
 * malloc'd (the caller frees it), or NULL when out of memory. */
char *store_pg_array(const struct batch *b, int field);

/* gate.c: see there.  At most GATE_HELD_MAX PUBACKs are held: the receive
 * maximum the bridge announces never exceeds it. */
#define GATE_HELD_MAX BRIDGE_QOS1_MAX
#define GATE_PUBACK_MAX 16 /* bytes: fixed header, id, reason, no properties */
int gate_attach(struct mosquitto *mosq);
/* the gate's two non-blocking sockets, owned by it from here: the broker's
 * connection and its end of the pair whose other end libmosquitto reads
 * (gate_attach sets them up; the unit test passes its own) */
int gate_adopt(int real, int pair);
void gate_detach(void);
int gate_real_fd(void);
int gate_pair_fd(void);
short gate_real_events(void);
short gate_pair_events(void);
/* every QoS 1 message handed to on_message, in order (mid: its packet id) */
void gate_note_message(int mid);
uint64_t gate_received(void);
uint64_t gate_released(void);
size_t gate_held(void);
/* lets the PUBACKs of the first upto messages of this connection go */
void gate_release(uint64_t upto);
/* moves bytes both ways without blocking: 0, or -1 when the connection is
 * lost (or broke the gate's rules): then gate_detach() and reconnect */
int gate_pump(void);
/* why gate_pump() last gave up (a static string) */
const char *gate_lost_reason(void);
/* writes what libmosquitto queued all the way to the broker's socket (the
 * PUBACKs excepted): 0, or -1 when the connection is lost or it takes > 5 s */
int gate_flush(struct mosquitto *mosq);

/* relay.c: event_outbox to MQTT, deleted only after the broker's PUBACKs.
 * relay_init: owner is this bridge's id (the claims' name).
 * relay_step: advances one step without blocking: claims and publishes a
 * batch (only when may_claim), or deletes the batch once acknowledged, or
 * hands it back when the acknowledgements are late.  Returns 1 while there
 * is more to do at once or a batch is out, 0 when idle, -1 on an error
 * (call again later).  relay_acked: a PUBACK (from on_publish).
 * relay_ready: a batch out is settled (relay_step has work now). */
void relay_init(const char *owner);
int relay_step(struct mosquitto *mosq, int may_claim);
void relay_acked(int mid, int reason);
/* store.c got this packet id for a publish of its own */
void relay_mid_issued(int mid);
int relay_waiting(void);
int relay_ready(void);
/* the earliest time (mono_us) a claim woken by a NOTIFY may go: the last
 * claim that took rows + TH_BRIDGE_RELAY_GAP_MS */
uint64_t relay_paced_us(void);

/* hubs.c: the hub to attach to (TH_MQTT_HOST/PORT) and the standby hub
 * (TH_MQTT_STANDBY=host:port, optional).  hubs_failed: a connect failed,
 * try the other next.  hubs_primary_back: on the standby, 1 when a probe
 * (every 5 s, a TCP connect bounded to 300 ms) found the primary back. */
int hubs_init(void);
const char *hubs_host(void);
int hubs_port(void);
int hubs_on_standby(void);
void hubs_failed(void);
void hubs_use_primary(void);
int hubs_primary_back(uint64_t now_us);
/* a TCP connect to the current hub, bounded by TH_MQTT_CONNECT_MS: 1 when
 * accepted (before libmosquitto's connect, which has no bound) */
int hubs_reachable(void);

/* ghosts.c: a status published on presence/<community>/<user> (a payload,
 * not a clear) was read: noted, and looked up with the round's others at
 * ghosts_flush(), once a round, which queues the clear of those that are no
 * membership (a status that came back after its clear; see there). */
void ghosts_note(const char *topic);
void ghosts_flush(void);

/* calls.c: the user's last connection closed: leave their ongoing calls.
 * 1 when something changed (events queued), 0 when nothing, -1 on error. */
int calls_user_offline(int64_t user_id);
/* calls_user_offline for those of ids[0..n) who are in an ongoing call,
 * found with one query: 1 when a call changed, 0 when none, -1 on error */
int calls_users_offline(const int64_t *ids, size_t n);

#endif
