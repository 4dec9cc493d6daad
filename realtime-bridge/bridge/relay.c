/* relay: server events from the outbox to MQTT.
 *
 * Events are rows of event_outbox, written by the apps in the transaction
 * of their change.  A bridge claims a batch in id order for a lease (other
 * bridges skip claimed rows: several bridges share the work), publishes
 * every event with QoS 1, and deletes an event only once the broker has
 * acknowledged (PUBACK) every one of its publishes.  Events are settled one
 * by one, not as a batch: an event whose acknowledgements do not all come
 * within TH_BRIDGE_RELAY_ACK_MS (the broker died, the connection broke) is
 * handed back (claim released) and published again: an event may arrive
 * twice, never zero times; the others of its batch are deleted.  The same
 * when the broker answers "no matching subscribers" (MQTT 5 reason 0x10)
 * to a publish of the event: every outbox topic has subscribers while the
 * edges' bridges are attached to the hub (chat/ has th-bridge itself), so
 * 0x10 means the hub just came back and its edges are not yet there; that
 * event goes out again until they are, at most RELAY_ATTEMPTS_MAX times
 * (then it is dropped and counted: nobody was there to receive it), while
 * the events delivered beside it are not sent again.  A bridge
 * that dies with a batch out leaves it claimed until the lease ends, then
 * another bridge publishes it.  No transaction is held while waiting.
 * Routing:
 *   "chat_message" (a REST-posted message) -> chat/<channel>/<sender>, the
 *                                            message itself as the payload
 *   "presence_gone" {"gone": [[c, u], ...]} -> presence/<c>/<u>, zero-length
 *                                            and retained, for each pair that
 *                                            is no membership now (below)
 *   any event with community_id          -> events/community/<id>
 *   any event with user_id               -> user/<id>/inbox as well
 *   any event with "inbox": [ids]        -> user/<id>/inbox for each id
 *
 * presence_gone (migration 0046): memberships ended (a leave, a removal, a
 * ban, an erased account, a deleted community), queued by a trigger in the
 * transaction that ended them, up to RELAY_GONE_MAX pairs an event.  A
 * zero-length retained publish deletes the retained status at the hub, and
 * the edges' bridges pass it on retained (Retain As Published), so every
 * broker deletes its copy and live subscribers see the status go.  Who is a
 * member again (left and rejoined before this ran: their status is current)
 * is read from the primary right before the publishes and left alone.  The
 * hub always has a subscriber for them (this bridge's presence
 * subscription).
 *
 * Acknowledgements are matched by packet id: a byte per id (65,536) names
 * the event of the batch that published it (0: none), set at publish and
 * cleared by the PUBACK.  A batch publishes at most RELAY_PUBLISH_MAX
 * messages (< 65,536) of at most TH_BRIDGE_RELAY_MAX_BYTES (32 MiB) bytes
 * (the first event it publishes goes whatever its size; the events beyond
 * either are handed back unpublished and lead the next batch, which is
 * claimed only once every PUBACK of this one came: what the relay holds is
 * bounded by both), so its own ids never wrap onto each other; but
 * libmosquitto hands out ids
 * by counting, without looking at what is in flight, so the receipts
 * store.c publishes meanwhile could be given an id the batch still waits
 * for, and that receipt's PUBACK would count as the event's: store.c tells
 * relay_mid_issued() every id it gets, and the event that waited for that
 * id goes out again (at least once).  A publish libmosquitto refuses for
 * good (too large, invalid) is dropped and counted, never retried: it would
 * block the outbox behind it.
 *
 * An event a later one of its batch supersedes (supersede.h: an older
 * `unread` of the same user and channel, an older `channel_activity` of the
 * same channel) is not published: it is deleted with the batch, counted in
 * th_events_superseded_total.  Under a stream of chat each stored batch
 * writes both kinds, and every publish costs the hub a copy to each edge.
 *
 * Paced: a NOTIFY leads to a claim at once when the last claim that took
 * rows is TH_BRIDGE_RELAY_GAP_MS (200) old, else when it is (main.c).  An
 * idle outbox relays its next event without delay; under a stream of chat,
 * where each stored batch commits an `unread` per sender and channel and a
 * `channel_activity` (and a NOTIFY), the events of the batches committed
 * within a gap go out as one claim and supersede each other: a claim per
 * batch published nearly each of them, every one a copy per edge at the
 * hub (docs/benchmarks.md, realtime-100k).  API.md asks unread state within
 * a second. */
#include <json-c/json.h>
#include <mosquitto.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bridge.h"
#include "config.h"
#include "db.h"
#include "ids.h"
#include "jhcore.h"
#include "log.h"
#include "metrics.h"
#include "mono.h"
#include "supersede.h"
#include "unreadver.h"

#define RELAY_BATCH 250
/* publishes of one batch: its packet ids must not wrap onto each other, and
 * the receipts store.c publishes while it waits take ids too */
#define RELAY_PUBLISH_MAX 40000
/* bytes of a batch's publishes (payload and topic) libmosquitto holds until
 * their PUBACKs, at most, by default (TH_BRIDGE_RELAY_MAX_BYTES; the first
 * event a batch publishes always goes, whatever its size): an event may be
 * up to the payload limit and go to RELAY_INBOX_MAX inboxes, so the count
 * alone let a batch hold gigabytes.  Under it, a batch of ordinary events is
 * bounded by the count as before. */
#define RELAY_BYTES_MAX (32ll << 20)
#define RELAY_TOPIC_BYTES 128 /* a topic and libmosquitto's record of a publish */
#define RELAY_STR_(x) #x
#define RELAY_STR(x) RELAY_STR_(x)
#define RELAY_INBOX_MAX 1000  /* inbox recipients of one event */
#define RELAY_GONE_MAX 1000   /* pairs of one presence_gone event (0046 makes at most that) */
#define RELAY_ATTEMPTS_MAX 60 /* publishes of a batch nobody subscribed to (~30 s) */
#define RC_NO_MATCHING_SUBSCRIBERS 0x10

enum relay_state { RELAY_IDLE, RELAY_WAITING };

_Static_assert(RELAY_BATCH < 256, "an event's index + 1 fits the byte per packet id");

/* One claimed event: its publishes not yet acknowledged, whether the hub
 * had no subscriber for one of them, whether it must go out again. */
struct relay_event {
	int64_t id;
	int pending;
	unsigned unrouted : 1, again : 1, deferred : 1;
};

static struct {
	enum relay_state state;
	struct relay_event ev[RELAY_BATCH]; /* the claimed batch, in id order */
	int n;
	int deferred;   /* events beyond either bound, handed back unpublished */
	int superseded; /* events a later one of the batch says: deleted with it */
	int cur;        /* the event route() publishes */
	size_t pending; /* publishes not yet acknowledged, over the batch */
	int failed;     /* a publish could not be queued: stop waiting */
	uint64_t deadline_us;
	unsigned char event_of[65536]; /* packet id -> index + 1 of its event */
	char owner[128];               /* claimed_by: this bridge's id */
	struct unreadver_batch vb;     /* version keys of the batch's events */
	long ack_ms, lease_s;
	size_t bytes_max;    /* TH_BRIDGE_RELAY_MAX_BYTES: of a batch's publishes */
	uint64_t claimed_us; /* when the last claim took rows */
	uint64_t gap_us;     /* TH_BRIDGE_RELAY_GAP_MS: from one claim to the next */
} rl;

/* The event waiting for packet id mid, its wait ended (-1: none). */
static int mid_take(int mid)
{
	int i;

	if (mid < 0 || mid > 65535 || rl.event_of[mid] == 0)
		return -1;
	i = rl.event_of[mid] - 1;
	rl.event_of[mid] = 0;
	rl.ev[i].pending--;
	rl.pending--;
	return i;
}

/* Publishes len bytes of payload to topic, QoS 1, for the event rl.cur. */
static void publish_as(struct mosquitto *mosq, const char *topic, const void *payload, int len,
		       bool retain)
{
	int mid = 0;
	int rc = mosquitto_publish_v5(mosq, &mid, topic, len, payload, 1, retain, NULL);

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
		/* not connected, out of memory: the event goes out again */
		rl.ev[rl.cur].again = 1;
		rl.failed = 1;
		return;
	}
	if (mid <= 0 || mid > 65535 || rl.event_of[mid] != 0) {
		rl.ev[rl.cur].again = 1;
		rl.failed = 1;
		return;
	}
	rl.event_of[mid] = (unsigned char)(rl.cur + 1);
	rl.ev[rl.cur].pending++;
	rl.pending++;
	metrics_add(bstats.events, 1);
}

static void publish(struct mosquitto *mosq, const char *topic, const char *payload)
{
	publish_as(mosq, topic, payload, (int)strlen(payload), false);
}

static int64_t int_field(struct json_object *o, const char *k)
{
	struct json_object *v;

	return json_object_object_get_ex(o, k, &v) && json_object_is_type(v, json_type_int)
		       ? json_object_get_int64(v)
		       : 0;
}

static int typed(struct json_object *o)
{
	struct json_object *v;

	return o && json_object_is_type(o, json_type_object) &&
	       json_object_object_get_ex(o, "type", &v);
}

static int is_type(struct json_object *o, const char *type)
{
	struct json_object *v;

	return json_object_object_get_ex(o, "type", &v) &&
	       json_object_is_type(v, json_type_string) &&
	       strcmp(json_object_get_string(v), type) == 0;
}

static int is_chat(struct json_object *o)
{
	return is_type(o, "chat_message");
}

static int is_presence_gone(struct json_object *o)
{
	return is_type(o, "presence_gone");
}

/* The pairs of a presence_gone event into cs, us (at most RELAY_GONE_MAX;
 * both NULL: only counted); how many.  A malformed pair is skipped. */
static size_t gone_pairs(struct json_object *o, int64_t *cs, int64_t *us)
{
	struct json_object *v;
	size_t n = 0;

	if (!json_object_object_get_ex(o, "gone", &v) || !json_object_is_type(v, json_type_array))
		return 0;
	for (size_t i = 0; i < json_object_array_length(v) && n < RELAY_GONE_MAX; i++) {
		struct json_object *pair = json_object_array_get_idx(v, i), *c, *u;

		if (!json_object_is_type(pair, json_type_array) ||
		    json_object_array_length(pair) != 2)
			continue;
		c = json_object_array_get_idx(pair, 0);
		u = json_object_array_get_idx(pair, 1);
		if (!json_object_is_type(c, json_type_int) ||
		    !json_object_is_type(u, json_type_int) || json_object_get_int64(c) <= 0 ||
		    json_object_get_int64(u) <= 0)
			continue;
		if (cs && us) {
			cs[n] = json_object_get_int64(c);
			us[n] = json_object_get_int64(u);
		}
		n++;
	}
	return n;
}

/* A presence_gone event: the retained status of each pair that is no
 * membership now deleted everywhere (a zero-length retained publish).  The
 * memberships are read just before the publishes: a user who left and came
 * back since is a member, online maybe, and keeps their status.  A failed
 * read sends the event again later. */
static void presence_clear(struct mosquitto *mosq, struct json_object *o)
{
	static int64_t cs[RELAY_GONE_MAX], us[RELAY_GONE_MAX];
	static char ca[IDS_ARRAY_SIZE(RELAY_GONE_MAX)], ua[IDS_ARRAY_SIZE(RELAY_GONE_MAX)];
	const char *p[2] = {ca, ua};
	size_t n = gone_pairs(o, cs, us);
	struct db_res *r;
	char topic[96];

	if (n == 0)
		return;
	ids_array(ca, sizeof(ca), cs, n);
	ids_array(ua, sizeof(ua), us, n);
	r = db_exec(DB_PRIMARY,
		    "SELECT x.c, x.u FROM unnest($1::bigint[], $2::bigint[]) AS x(c, u) "
		    "WHERE NOT EXISTS (SELECT 1 FROM memberships m "
		    "                  WHERE m.community_id = x.c AND m.user_id = x.u)",
		    2, p);
	if (!r) {
		log_warn("bridge: presence_gone: reading memberships failed (%s): it goes out "
			 "again",
			 db_last_error());
		rl.ev[rl.cur].again = 1;
		return;
	}
	for (int i = 0; i < db_res_rows(r); i++) {
		snprintf(topic, sizeof(topic), "presence/%s/%s", db_res_get(r, i, 0),
			 db_res_get(r, i, 1));
		publish_as(mosq, topic, NULL, 0, true);
		metrics_add(bstats.presence_cleared, 1);
	}
	db_res_free(r);
}

/* How many publishes route() makes of event o, at most. */
static size_t publishes(struct json_object *o)
{
	struct json_object *v;
	size_t n;

	if (!typed(o))
		return 0;
	if (is_chat(o))
		return 1;
	if (is_presence_gone(o))
		return gone_pairs(o, NULL, NULL);
	n = (int_field(o, "community_id") > 0) + (int_field(o, "user_id") > 0);
	if (json_object_object_get_ex(o, "inbox", &v) && json_object_is_type(v, json_type_array))
		n += json_object_array_length(v) < RELAY_INBOX_MAX ? json_object_array_length(v)
								   : RELAY_INBOX_MAX;
	return n;
}

/* Publishes event o (its text: the payload as stored). */
static void route(struct mosquitto *mosq, struct json_object *o, const char *text)
{
	struct json_object *v;
	char topic[96];
	int64_t cid, uid;

	if (!typed(o)) {
		log_warn("bridge: outbox event without a type dropped");
		return;
	}
	if (is_chat(o)) {
		struct json_object *msg;

		if (json_object_object_get_ex(o, "message", &msg)) {
			snprintf(topic, sizeof(topic), "chat/%lld/%lld",
				 (long long)int_field(o, "channel_id"),
				 (long long)int_field(o, "sender_id"));
			publish(mosq, topic,
				json_object_to_json_string_ext(msg, JSON_C_TO_STRING_PLAIN));
		}
		return;
	}
	if (is_presence_gone(o)) {
		presence_clear(mosq, o);
		return;
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
}

void relay_init(const char *owner)
{
	snprintf(rl.owner, sizeof(rl.owner), "%s", owner);
	rl.ack_ms = cfg_int("TH_BRIDGE_RELAY_ACK_MS", 5000, 100, 600000);
	/* the lease outlives the wait for acknowledgements and the statements
	 * around it, so a live bridge never loses a batch it is still on */
	rl.lease_s = rl.ack_ms / 500 + 5;
	rl.gap_us = (uint64_t)cfg_int("TH_BRIDGE_RELAY_GAP_MS", 200, 0, 1000) * 1000;
	/* at least a publish of the largest payload the brokers take (16 KiB,
	 * message_size_limit): under it every such event would go alone, a
	 * batch and a round trip to the hub each */
	rl.bytes_max = (size_t)cfg_int("TH_BRIDGE_RELAY_MAX_BYTES", RELAY_BYTES_MAX, 16384,
				       1ll << 30);
}

uint64_t relay_paced_us(void)
{
	return rl.claimed_us + rl.gap_us;
}

void relay_acked(int mid, int reason)
{
	int i;

	if (rl.state != RELAY_WAITING || (i = mid_take(mid)) < 0)
		return;
	/* a refusal (>= 0x80: not authorized, quota) would be refused again:
	 * it settles the publish, and is counted */
	if (reason >= 0x80)
		metrics_add(bstats.events_refused, 1);
	else if (reason == RC_NO_MATCHING_SUBSCRIBERS)
		rl.ev[i].unrouted = 1;
}

void relay_mid_issued(int mid)
{
	int i;

	/* an id an event waits for went to another publish: which PUBACK
	 * answers which is unknown now, so that event goes out again */
	if (rl.state == RELAY_WAITING && (i = mid_take(mid)) >= 0)
		rl.ev[i].again = 1;
}

int relay_waiting(void)
{
	return rl.state == RELAY_WAITING;
}

int relay_ready(void)
{
	return rl.state == RELAY_WAITING && (rl.pending == 0 || rl.failed);
}

enum relay_outcome { RELAY_DELIVERED, RELAY_UNROUTED, RELAY_AGAIN, RELAY_OUTCOMES };

static enum relay_outcome outcome(const struct relay_event *e)
{
	if (e->pending > 0 || e->again || e->deferred)
		return RELAY_AGAIN;
	return e->unrouted ? RELAY_UNROUTED : RELAY_DELIVERED;
}

/* "{1,2,3}": the ids of the batch's events with outcome how, as a bigint[]
 * parameter; how many into *count */
static void ids_param(enum relay_outcome how, char *out, size_t size, int *count)
{
	int64_t id[RELAY_BATCH];
	size_t n = 0;

	for (int i = 0; i < rl.n; i++)
		if (outcome(&rl.ev[i]) == how)
			id[n++] = rl.ev[i].id;
	*count = (int)n;
	ids_array(out, size, id, n);
}

/* Ends the wait, each event by its outcome: delivered ones are deleted;
 * ones the hub had no subscriber for are handed back with one more attempt
 * (dropped after RELAY_ATTEMPTS_MAX); unacknowledged ones are handed back
 * (claim released).  The number of events that go out again, or -1 (the
 * statement failed: the claims end with their lease, and every event of the
 * batch goes out again). */
static int finish(void)
{
	static const char sql[] =
		"WITH d AS (DELETE FROM event_outbox WHERE claimed_by = $4 "
		"           AND (id = ANY($1::bigint[]) OR (id = ANY($2::bigint[]) "
		"                AND attempts + 1 >= " RELAY_STR(
			RELAY_ATTEMPTS_MAX) ")) "
					    "           RETURNING id, id = ANY($2::bigint[]) AS "
					    "dropped), "
					    "u AS (UPDATE event_outbox SET claimed_by = NULL, "
					    "claimed_until = NULL, "
					    "             attempts = attempts + (id = "
					    "ANY($2::bigint[]))::int "
					    "      WHERE claimed_by = $4 AND (id = "
					    "ANY($2::bigint[]) OR id = ANY($3::bigint[])) "
					    "        AND id NOT IN (SELECT id FROM d)) "
					    "SELECT count(*) FILTER (WHERE dropped) FROM d";
	char ids[RELAY_OUTCOMES][IDS_ARRAY_SIZE(RELAY_BATCH)];
	const char *p[4] = {ids[RELAY_DELIVERED], ids[RELAY_UNROUTED], ids[RELAY_AGAIN], rl.owner};
	int count[RELAY_OUTCOMES], dropped = 0, rc = -1;
	struct db_res *r;

	for (int k = 0; k < RELAY_OUTCOMES; k++)
		ids_param((enum relay_outcome)k, ids[k], sizeof(ids[k]), &count[k]);
	r = db_exec(DB_PRIMARY, sql, 4, p);
	memset(rl.event_of, 0, sizeof(rl.event_of));
	rl.state = RELAY_IDLE;
	rl.pending = 0;
	rl.failed = 0;
	if (!r)
		return -1;
	count[RELAY_AGAIN] -= rl.deferred; /* not tried: no retry, no pause */
	/* counted once deleted: a failed statement hands them out again */
	metrics_add(bstats.events_superseded, (uint64_t)rl.superseded);
	/* counted once handed back, at every batch that left the event out */
	metrics_add(bstats.events_deferred, (uint64_t)rl.deferred);
	if (db_res_rows(r) == 1)
		dropped = atoi(db_res_get(r, 0, 0));
	if (dropped > 0) {
		log_warn("bridge: %d outbox events dropped: no subscriber after %d attempts",
			 dropped, RELAY_ATTEMPTS_MAX);
		metrics_add(bstats.events_unrouted, (uint64_t)dropped);
	}
	rc = count[RELAY_UNROUTED] - dropped + count[RELAY_AGAIN];
	metrics_add(bstats.events_retried, (uint64_t)rc);
	db_res_free(r);
	return rc;
}

int relay_step(struct mosquitto *mosq, int may_claim)
{
	char lease[24];
	const char *p[2] = {rl.owner, lease};
	struct db_res *r;
	struct json_object *obj[RELAY_BATCH];
	struct supersede_key keys[RELAY_BATCH];
	unsigned char old[RELAY_BATCH];
	size_t budget = 0, bytes = 0;
	int i, full, first, rc = -1;

	if (rl.state == RELAY_WAITING) {
		int again;

		if (rl.pending > 0 && !rl.failed && mono_us() < rl.deadline_us)
			return 1;
		if (rl.pending > 0)
			log_warn("bridge: %zu of the outbox's publishes unacknowledged after %ld "
				 "ms: their events go out again",
				 rl.pending, rl.ack_ms);
		full = rl.n == RELAY_BATCH || rl.deferred > 0;
		again = finish();
		/* events to send again (the hub had no subscriber: its edges
		 * are not back yet; or no acknowledgement): after the caller's
		 * short pause */
		if (again != 0)
			return -1;
		return full ? 1 : 0; /* a full batch: more may wait */
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
	rl.claimed_us = mono_us();
	rl.state = RELAY_WAITING;
	rl.pending = 0;
	rl.failed = 0;
	/* the cached answers these events change are made old before anyone
	 * hears of them (lib/unreadver.h) */
	for (i = 0; i < rl.n; i++)
		unreadver_add_event(&rl.vb, db_res_get(r, i, 1));
	unreadver_flush(&rl.vb);
	rl.deferred = 0;
	rl.superseded = 0;
	for (i = 0; i < rl.n; i++) {
		const char *text = db_res_get(r, i, 1);

		obj[i] = jh_parse(text, strlen(text));
		keys[i] = supersede_key_of(obj[i]);
	}
	supersede_mark(keys, rl.n, old);
	for (i = 0; i < rl.n; i++) {
		rl.ev[i] = (struct relay_event){.id = strtoll(db_res_get(r, i, 0), NULL, 10)};
		if (old[i]) {
			rl.superseded++;
			continue; /* deleted with the batch: a later one says it */
		}
		/* both only grow: once one event is deferred, every later one is,
		 * so the outbox's order holds.  The first event with publishes
		 * goes whatever its size (the first claimed may be superseded, or
		 * have none), so every batch publishes one: nothing stalls. */
		first = budget == 0;
		budget += publishes(obj[i]);
		/* a presence clear's payload is empty */
		bytes += publishes(obj[i]) *
			 ((is_presence_gone(obj[i]) ? 0 : strlen(db_res_get(r, i, 1))) +
			  RELAY_TOPIC_BYTES);
		if (!first && (budget > RELAY_PUBLISH_MAX || bytes > rl.bytes_max)) {
			rl.ev[i].deferred = 1;
			rl.deferred++;
			continue;
		}
		rl.cur = i;
		route(mosq, obj[i], db_res_get(r, i, 1));
	}
	for (i = 0; i < rl.n; i++)
		json_object_put(obj[i]);
	rl.deadline_us = mono_us() + (uint64_t)rl.ack_ms * 1000;
	rc = 1;
out:
	db_res_free(r);
	return rc;
}
