/* relay: server events from the outbox to MQTT.
 *
 * Events are rows of event_outbox, written by the apps in the transaction
 * of their change.  A bridge claims a batch in id order for a lease (other
 * bridges skip claimed rows: several bridges share the work), publishes
 * every event with QoS 1, and deletes the batch only once the broker has
 * acknowledged (PUBACK) every one of those publishes.  If the
 * acknowledgements do not all come within TH_BRIDGE_RELAY_ACK_MS (the
 * broker died, the connection broke), the claim is released and the batch
 * is published again: an event may arrive twice, never zero times.  The
 * same when the broker answers "no matching subscribers" (MQTT 5 reason
 * 0x10): every outbox topic has subscribers while the edges' bridges are
 * attached to the hub (chat/ has th-bridge itself), so 0x10 means the hub
 * just came back and its edges are not yet there; the batch goes out again
 * until they are, at most RELAY_ATTEMPTS_MAX times (then it is dropped and
 * counted: nobody was there to receive it).  A bridge
 * that dies with a batch out leaves it claimed until the lease ends, then
 * another bridge publishes it.  No transaction is held while waiting.
 * Routing:
 *   "chat_message" (a REST-posted message) -> chat/<channel>/<sender>, the
 *                                            message itself as the payload
 *   any event with community_id          -> events/community/<id>
 *   any event with user_id               -> user/<id>/inbox as well
 *   any event with "inbox": [ids]        -> user/<id>/inbox for each id
 *
 * Acknowledgements are matched by packet id: a bit per id (65,536 bits)
 * set at publish and cleared by the PUBACK.  A batch of RELAY_BATCH events
 * publishes at most RELAY_BATCH * (2 + RELAY_INBOX_MAX) messages (< 65,536),
 * so its own ids never wrap onto each other; but libmosquitto hands out ids
 * by counting, without looking at what is in flight, so the receipts
 * store.c publishes meanwhile could be given an id the batch still waits
 * for, and that receipt's PUBACK would count as the event's: store.c tells
 * relay_mid_issued() every id it gets, and a batch that sees one of its
 * own goes out again (at least once).  A publish libmosquitto refuses for
 * good (too large, invalid) is dropped and counted, never retried: it would
 * block the outbox behind it. */
#include <json-c/json.h>
#include <mosquitto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bridge.h"
#include "config.h"
#include "db.h"
#include "jhcore.h"
#include "log.h"
#include "metrics.h"
#include "mono.h"

#define RELAY_BATCH 50
#define RELAY_STR_(x) #x
#define RELAY_STR(x) RELAY_STR_(x)
#define RELAY_INBOX_MAX 1000  /* inbox recipients of one event */
#define RELAY_ATTEMPTS_MAX 60 /* publishes of a batch nobody subscribed to (~30 s) */
#define RC_NO_MATCHING_SUBSCRIBERS 0x10

enum relay_state { RELAY_IDLE, RELAY_WAITING };

static struct {
	enum relay_state state;
	int64_t ids[RELAY_BATCH]; /* the claimed batch, in id order */
	int n;
	size_t pending;  /* publishes not yet acknowledged */
	size_t unrouted; /* acknowledged with "no matching subscribers" */
	int failed;      /* a publish could not be queued */
	uint64_t deadline_us;
	unsigned char mids[65536 / 8];
	char owner[128]; /* claimed_by: this bridge's id */
	long ack_ms, lease_s;
} rl;

static int mid_test_clear(int mid)
{
	unsigned char bit = (unsigned char)(1u << (mid & 7));

	if (mid < 0 || mid > 65535 || !(rl.mids[mid >> 3] & bit))
		return 0;
	rl.mids[mid >> 3] &= (unsigned char)~bit;
	return 1;
}

static void publish(struct mosquitto *mosq, const char *topic, const char *payload)
{
	int mid = 0;
	int rc = mosquitto_publish_v5(mosq, &mid, topic, (int)strlen(payload), payload, 1, false,
				      NULL);

	switch (rc) {
	case MOSQ_ERR_SUCCESS:
		break;
	case MOSQ_ERR_OVERSIZE_PACKET:
	case MOSQ_ERR_PAYLOAD_SIZE:
	case MOSQ_ERR_INVAL:
	case MOSQ_ERR_MALFORMED_UTF8:
	case MOSQ_ERR_QOS_NOT_SUPPORTED:
		/* would be refused again, every time */
		log_warn("bridge: outbox event dropped on %s: %s", topic, mosquitto_strerror(rc));
		metrics_add(bstats.events_refused, 1);
		return;
	default:
		rl.failed = 1; /* not connected, out of memory: the batch goes out again */
		return;
	}
	if (mid <= 0 || mid > 65535) {
		rl.failed = 1;
		return;
	}
	rl.mids[mid >> 3] |= (unsigned char)(1u << (mid & 7));
	rl.pending++;
	metrics_add(bstats.events, 1);
}

static int64_t int_field(struct json_object *o, const char *k)
{
	struct json_object *v;

	return json_object_object_get_ex(o, k, &v) && json_object_is_type(v, json_type_int)
		       ? json_object_get_int64(v)
		       : 0;
}

static void route(struct mosquitto *mosq, const char *text)
{
	struct json_object *o = jh_parse(text, strlen(text)), *v;
	char topic[96];
	int64_t cid, uid;
	const char *type;

	if (!o || !json_object_is_type(o, json_type_object) ||
	    !json_object_object_get_ex(o, "type", &v)) {
		log_warn("bridge: outbox event without a type dropped");
		goto out;
	}
	type = json_object_get_string(v);
	if (strcmp(type, "chat_message") == 0) {
		struct json_object *msg;

		if (json_object_object_get_ex(o, "message", &msg)) {
			snprintf(topic, sizeof(topic), "chat/%lld/%lld",
				 (long long)int_field(o, "channel_id"),
				 (long long)int_field(o, "sender_id"));
			publish(mosq, topic,
				json_object_to_json_string_ext(msg, JSON_C_TO_STRING_PLAIN));
		}
		goto out;
	}
	cid = int_field(o, "community_id");
	if (cid > 0) {
		snprintf(topic, sizeof(topic), "events/community/%lld", (long long)cid);
		publish(mosq, topic, text);
	}
	uid = int_field(o, "user_id");
	if (uid > 0) {
		snprintf(topic, sizeof(topic), "user/%lld/inbox", (long long)uid);
		publish(mosq, topic, text);
	}
	if (json_object_object_get_ex(o, "inbox", &v) && json_object_is_type(v, json_type_array)) {
		for (size_t i = 0; i < json_object_array_length(v) && i < RELAY_INBOX_MAX; i++) {
			int64_t to = json_object_get_int64(json_object_array_get_idx(v, i));

			if (to > 0 && to != uid) {
				snprintf(topic, sizeof(topic), "user/%lld/inbox", (long long)to);
				publish(mosq, topic, text);
			}
		}
	}
out:
	json_object_put(o);
}

void relay_init(const char *owner)
{
	snprintf(rl.owner, sizeof(rl.owner), "%s", owner);
	rl.ack_ms = cfg_int("TH_BRIDGE_RELAY_ACK_MS", 5000, 100, 600000);
	/* the lease outlives the wait for acknowledgements and the statements
	 * around it, so a live bridge never loses a batch it is still on */
	rl.lease_s = rl.ack_ms / 500 + 5;
}

void relay_acked(int mid, int reason)
{
	if (rl.state != RELAY_WAITING || !mid_test_clear(mid))
		return;
	rl.pending--;
	/* a refusal (>= 0x80: not authorized, quota) would be refused again:
	 * it settles the publish, and is counted */
	if (reason >= 0x80)
		metrics_add(bstats.events_refused, 1);
	else if (reason == RC_NO_MATCHING_SUBSCRIBERS)
		rl.unrouted++;
}

void relay_mid_issued(int mid)
{
	if (rl.state == RELAY_WAITING && mid_test_clear(mid)) {
		/* an id the batch waits for went to another publish: which
		 * PUBACK answers which is unknown now */
		rl.pending--;
		rl.failed = 1;
	}
}

int relay_waiting(void)
{
	return rl.state == RELAY_WAITING;
}

int relay_ready(void)
{
	return rl.state == RELAY_WAITING && (rl.pending == 0 || rl.failed);
}

/* "{1,2,3}": the batch's ids as a bigint[] parameter */
static void ids_param(char *out, size_t size)
{
	size_t len = 0;

	len += (size_t)snprintf(out, size, "{");
	for (int i = 0; i < rl.n && len < size; i++)
		len += (size_t)snprintf(out + len, size - len, "%s%lld", i ? "," : "",
					(long long)rl.ids[i]);
	if (len < size)
		snprintf(out + len, size - len, "}");
}

enum relay_outcome { RELAY_DELIVERED, RELAY_UNACKED, RELAY_UNROUTED };

/* Ends the wait: deletes the batch when every publish was acknowledged,
 * else hands it back (claim released) to be published again; a batch
 * nobody subscribed to is dropped after RELAY_ATTEMPTS_MAX claims.  0 or
 * -1. */
static int finish(enum relay_outcome how)
{
	static const char *const sql[] = {
		[RELAY_DELIVERED] =
			"DELETE FROM event_outbox WHERE id = ANY($1::bigint[]) AND claimed_by = $2",
		[RELAY_UNACKED] = "UPDATE event_outbox SET claimed_by = NULL, claimed_until = NULL "
				  "WHERE id = ANY($1::bigint[]) AND claimed_by = $2",
		[RELAY_UNROUTED] =
			"WITH d AS (DELETE FROM event_outbox WHERE id = ANY($1::bigint[]) "
			"           AND claimed_by = $2 AND attempts + 1 >= " RELAY_STR(
				RELAY_ATTEMPTS_MAX) "           RETURNING id), "
						    "u AS (UPDATE event_outbox SET claimed_by = "
						    "NULL, claimed_until = NULL, "
						    "             attempts = attempts + 1 "
						    "      WHERE id = ANY($1::bigint[]) AND "
						    "claimed_by = $2 "
						    "        AND id NOT IN (SELECT id FROM d)) "
						    "SELECT count(*) FROM d",
	};
	char ids[RELAY_BATCH * 21 + 3];
	const char *p[2] = {ids, rl.owner};
	struct db_res *r;

	ids_param(ids, sizeof(ids));
	r = db_exec(DB_PRIMARY, sql[how], 2, p);
	memset(rl.mids, 0, sizeof(rl.mids));
	rl.state = RELAY_IDLE;
	rl.pending = 0;
	rl.unrouted = 0;
	rl.failed = 0;
	if (!r)
		return -1; /* the lease ends by itself: the batch goes out again */
	if (how == RELAY_UNROUTED && db_res_rows(r) == 1 && atoi(db_res_get(r, 0, 0)) > 0) {
		log_warn("bridge: %s outbox events dropped: no subscriber after %d attempts",
			 db_res_get(r, 0, 0), RELAY_ATTEMPTS_MAX);
		metrics_add(bstats.events_unrouted, (uint64_t)atoi(db_res_get(r, 0, 0)));
	}
	db_res_free(r);
	return 0;
}

int relay_step(struct mosquitto *mosq, int may_claim)
{
	char lease[24];
	const char *p[2] = {rl.owner, lease};
	struct db_res *r;
	int i, full, rc = -1;

	if (rl.state == RELAY_WAITING) {
		if (rl.pending == 0 && !rl.failed && rl.unrouted == 0) {
			full = rl.n == RELAY_BATCH;
			if (finish(RELAY_DELIVERED) < 0)
				return -1;
			return full ? 1 : 0; /* a full batch: more may wait */
		}
		if (rl.pending == 0 && !rl.failed) {
			/* the hub had no subscriber (its edges not back yet): again
			 * after the caller's short pause */
			metrics_add(bstats.events_retried, (uint64_t)rl.n);
			(void)finish(RELAY_UNROUTED);
			return -1;
		}
		if (rl.failed || mono_us() >= rl.deadline_us) {
			log_warn("bridge: %zu of the outbox's publishes unacknowledged after %ld "
				 "ms: "
				 "the batch of %d events goes out again",
				 rl.pending, rl.ack_ms, rl.n);
			metrics_add(bstats.events_retried, (uint64_t)rl.n);
			(void)finish(RELAY_UNACKED);
			return -1;
		}
		return 1;
	}
	if (!may_claim)
		return 0;
	snprintf(lease, sizeof(lease), "%ld", rl.lease_s);
	r = db_exec(DB_PRIMARY,
		    "WITH c AS (SELECT id FROM event_outbox "
		    "           WHERE claimed_until IS NULL OR claimed_until < now() "
		    "           ORDER BY id LIMIT " RELAY_STR(
			    RELAY_BATCH) " FOR UPDATE SKIP LOCKED), "
					 "u AS (UPDATE event_outbox e SET claimed_by = $1, "
					 "             claimed_until = now() + make_interval(secs "
					 "=> $2::int) "
					 "      FROM c WHERE e.id = c.id RETURNING e.id, "
					 "e.payload) "
					 "SELECT id, payload::text FROM u ORDER BY id",
		    2, p);
	if (!r)
		goto out;
	rl.n = db_res_rows(r);
	rc = 0;
	if (rl.n == 0)
		goto out;
	rl.state = RELAY_WAITING;
	rl.pending = 0;
	rl.failed = 0;
	for (i = 0; i < rl.n; i++) {
		rl.ids[i] = strtoll(db_res_get(r, i, 0), NULL, 10);
		route(mosq, db_res_get(r, i, 1));
	}
	rl.deadline_us = mono_us() + (uint64_t)rl.ack_ms * 1000;
	rc = 1;
out:
	db_res_free(r);
	return rc;
}
