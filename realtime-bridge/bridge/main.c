/* th-bridge: MQTT -> PostgreSQL persistence of chat messages, and the
 * event outbox -> MQTT relay.
 *
 * The loop is driven by hand (mosquitto_threaded_set + loop_read /
 * loop_write / loop_misc) and pipelined: batch N's transaction is out at
 * PostgreSQL (db_tx_send, without waiting) while batch N+1 is read.  The
 * PUBACKs libmosquitto writes for the messages it hands to on_message do
 * not reach the broker on their own: the gate (gate.c) holds them until the
 * message they answer and every message before it are settled (committed,
 * or handled on the spot: presence, invalid), and lets them go in order.
 * So the broker may have receive-maximum messages out to us (a few batches)
 * and keeps sending while a batch commits.  When PostgreSQL fails (gone,
 * shutting down, a conflict), the broker connection is dropped with the
 * held PUBACKs: the broker keeps the messages unacknowledged in our
 * persistent session and sends them again (DUP) after we reconnect.  When
 * PostgreSQL refuses the batch itself (an error a message may cause), the
 * batch is tried again in halves, in order (split.h), and a single message
 * that still fails is quarantined and settled (out_failed): one message
 * never stops everybody's from being stored. */
#include <errno.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bridge.h"
#include "cache.h"
#include "config.h"
#include "db.h"
#include "events.h"
#include "linger.h"
#include "log.h"
#include "metrics.h"
#include "mono.h"
#include "split.h"

#define SERVICE_USER "th-service"
/* packets read from the broker in one round of the loop, at most */
#define READ_ROUND_MAX 512
/* turns of libmosquitto writing and the gate forwarding in one write_all() */
#define WRITE_ROUNDS_MAX 64

struct bridge_stats bstats;
/* two batches: one filling from the broker, one out at PostgreSQL */
static struct batch batches[2];
static struct batch *filling = &batches[0], *inflight;
/* the messages of inflight out at PostgreSQL: all of them, or after a
 * failure a part (split.h); those before part.lo are settled */
static struct split part;
/* before the next connect (main; backoff_failed) */
static long backoff_ms;
/* when the broker accepted this connection (CONNACK), 0 when it did not */
static uint64_t up_since_us;
static volatile sig_atomic_t stopping;
static int connected;
static uint64_t conn_id; /* counts broker connections (struct batch.conn) */
static char sub_filter[128], presence_filter[128];
static int calls_changed;

static void on_signal(int sig)
{
	(void)sig;
	stopping = 1;
}

/* the longest wait before a connect: while we are away after a broker
 * restart, chat published to it has no subscriber */
#define BACKOFF_MAX_MS 1000
/* a connection up this long was healthy: its loss starts the back-off over */
#define HEALTHY_US (10 * 1000000ull)

/* A connect failed, or a connection ended that we did not end on purpose
 * (abort_connection: a refused CONNACK, a lost connection, PostgreSQL
 * failing): the next connect waits 100 ms doubling to BACKOFF_MAX_MS while
 * failures follow each other, so a broker that refuses us (a bad secret, a
 * limit) or drops us at once is not hammered.  After a healthy connection it
 * starts over: one loss reconnects at once. */
static void backoff_failed(void)
{
	if (up_since_us && mono_us() - up_since_us >= HEALTHY_US)
		backoff_ms = 0;
	else if (!backoff_ms)
		backoff_ms = 100;
	else
		backoff_ms = backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff_ms * 2;
	up_since_us = 0;
}

static void on_connect(struct mosquitto *mosq, void *obj, int rc, int flags,
		       const mosquitto_property *props)
{
	(void)obj;
	(void)props;
	if (rc != 0) {
		/* libmosquitto's read fails next, and abort_connection backs off */
		log_error("bridge: broker refused the connection (%s)",
			  mosquitto_reason_string(rc));
		return;
	}
	connected = 1;
	up_since_us = mono_us();
	log_info("bridge: connected (session %s) to the %shub %s:%d", flags & 1 ? "resumed" : "new",
		 hubs_on_standby() ? "standby " : "", hubs_host(), hubs_port());
	/* subscribe on every connect: a reconnect restores the subscription.
	 * No retained messages: the bridge acts on a live "offline" only, and
	 * mosquitto 2.0.11 sends a shared subscription every retained match
	 * on each SUBSCRIBE (the hub retains every user's presence: 100,000
	 * messages queued ahead of the chat at each reconnect, which filled
	 * the session's queue after a few and made the broker drop chat). */
	if (mosquitto_subscribe_v5(mosq, NULL, sub_filter, 1, MQTT_SUB_OPT_SEND_RETAIN_NEVER,
				   NULL) != MOSQ_ERR_SUCCESS ||
	    mosquitto_subscribe_v5(mosq, NULL, presence_filter, 1, MQTT_SUB_OPT_SEND_RETAIN_NEVER,
				   NULL) != MOSQ_ERR_SUCCESS)
		log_error("bridge: subscribe failed");
}

static void on_disconnect(struct mosquitto *mosq, void *obj, int rc,
			  const mosquitto_property *props)
{
	(void)mosq;
	(void)obj;
	(void)props;
	connected = 0;
	log_warn("bridge: disconnected (%d)", rc);
}

/* the broker acknowledged a publish of ours: an outbox event's, or a
 * receipt's (relay_acked ignores what it did not publish) */
static void on_publish(struct mosquitto *mosq, void *obj, int mid, int reason,
		       const mosquitto_property *props)
{
	(void)mosq;
	(void)obj;
	(void)props;
	relay_acked(mid, reason);
}

/* The hub's origin stamp of a chat message (topic.h) into out ("" when
 * none, or not a broker id). */
static void origin_of(const mosquitto_property *props, char *out, size_t size)
{
	out[0] = '\0';
	for (const mosquitto_property *p = props; p; p = mosquitto_property_next(p)) {
		char *name = NULL, *value = NULL;

		if (mosquitto_property_identifier(p) != MQTT_PROP_USER_PROPERTY ||
		    mosquitto_property_read_string_pair(p, MQTT_PROP_USER_PROPERTY, &name, &value,
							false) == NULL)
			continue;
		if (strcmp(name, TOPIC_ORIGIN_PROP) == 0 && topic_origin_ok(value) &&
		    strlen(value) < size)
			memcpy(out, value, strlen(value) + 1);
		free(name);
		free(value);
		if (out[0])
			return;
	}
}

/* Users whose live "offline" was read in this round: their calls are looked
 * up together (calls_users_offline), after the read and before any PUBACK
 * leaves (write_all), so a presence message is acknowledged only once its
 * user has left their calls.  One query for a reconnect storm's thousands,
 * not three round trips each on this thread. */
#define OFFLINE_MAX 1024
static int64_t offline_ids[OFFLINE_MAX];
static size_t offline_n;

static void offline_flush(void)
{
	if (offline_n && calls_users_offline(offline_ids, offline_n) > 0)
		calls_changed = 1;
	offline_n = 0;
}

static void on_message(struct mosquitto *mosq, void *obj, const struct mosquitto_message *m,
		       const mosquitto_property *props)
{
	(void)mosq;
	(void)obj;
	/* QoS 1 only: that is what is answered with a PUBACK (our subscriptions
	 * are QoS 1, so a QoS 2 delivery, answered with PUBREC, never comes) */
	if (m->qos == 1)
		gate_note_message(m->mid);
	if (strncmp(m->topic, "presence/", 9) == 0) {
		metrics_add(bstats.presence, 1);
		/* a status, not a clear (ours come back too): a member's? */
		if (m->payloadlen > 0)
			ghosts_note(m->topic);
		/* a live "offline" (not the retained copies a subscribe replays):
		 * the user's last connection closed */
		const char *slash = strrchr(m->topic, '/');

		if (!m->retain && slash && m->payloadlen > 0 && m->payloadlen < 256 &&
		    memmem(m->payload, (size_t)m->payloadlen, "\"offline\"", 9)) {
			if (offline_n == OFFLINE_MAX)
				offline_flush();
			offline_ids[offline_n++] = strtoll(slash + 1, NULL, 10);
		}
		return;
	}
	filling->conn = conn_id;
	if (m->qos == 0 && filling->n_qos0 >= BRIDGE_QOS0_MAX) {
		metrics_add(bstats.dropped, 1);
		return;
	}
	/* redeliveries (libmosquitto does not expose DUP) are stored once and
	 * counted as duplicates when the batch commits */
	if (store_accept(filling, m->topic, m->payload, m->payloadlen, 0) == 0) {
		/* a QoS 0 message is before the next QoS 1 one: with rx 0 for one
		 * read first on a connection, settled() took 0 - 1 and let every
		 * held PUBACK go before the commit */
		filling->msgs[filling->n - 1].rx = gate_received() + (m->qos == 0);
		filling->n_qos0 += m->qos == 0;
		origin_of(props, filling->msgs[filling->n - 1].origin,
			  sizeof(filling->msgs[filling->n - 1].origin));
	}
}

static int read_secret(char *out, size_t size)
{
	const char *path = cfg_str("TH_MQTT_SERVICE_SECRET_FILE", NULL);
	FILE *f = path ? fopen(path, "r") : NULL;
	size_t n;

	if (!f) {
		fprintf(stderr, "bridge: cannot read TH_MQTT_SERVICE_SECRET_FILE (%s)\n",
			path ? path : "unset");
		return -1;
	}
	n = fread(out, 1, size - 1, f);
	fclose(f);
	while (n && (out[n - 1] == '\n' || out[n - 1] == '\r'))
		n--;
	out[n] = '\0';
	return n ? 0 : -1;
}

static int metrics_setup(void)
{
	static const char *const labels[] = {"batch"};
	char path[4096];
	const char *var = cfg_str("TH_VAR_DIR", NULL);

	if (!var)
		return 0;
	snprintf(path, sizeof(path), "%s/run/bridge.metrics", var);
	if (metrics_open(path, "bridge", labels, 1) < 0)
		return -1;
	bstats.persisted = metrics_counter("messages_persisted_total");
	bstats.duplicates = metrics_counter("messages_duplicate_total");
	bstats.dropped = metrics_counter("messages_dropped_total");
	bstats.batches = metrics_counter("batches_total");
	bstats.batch_messages = metrics_counter("batch_messages_total");
	bstats.lag_ms = metrics_counter("lag_ms");
	bstats.events = metrics_counter("events_published_total");
	/* outbox events published again: their PUBACKs were late (broker gone) */
	bstats.events_retried = metrics_counter("events_retried_total");
	/* publishes of events the broker refused (a reason code >= 0x80) */
	bstats.events_refused = metrics_counter("events_refused_total");
	/* outbox events dropped: no subscriber on the hub after every attempt */
	bstats.events_unrouted = metrics_counter("events_unrouted_total");
	bstats.events_superseded = metrics_counter("events_superseded_total");
	/* outbox events a batch's bound (TH_BRIDGE_RELAY_MAX_BYTES, 40,000
	 * publishes) left for the next one, once per batch that left them */
	bstats.events_deferred = metrics_counter("events_deferred_total");
	bstats.receipts = metrics_counter("receipts_published_total");
	/* an id another sender or channel holds (API.md, v1.1: message ids) */
	bstats.refused_id_taken = metrics_counter("messages_refused_id_taken_total");
	/* stored with reply_to null: it named no message of the same channel */
	bstats.reply_to_cleared = metrics_counter("messages_reply_to_cleared_total");
	/* a gauge: messages read whose PUBACK the gate holds until they commit */
	bstats.awaiting_commit = metrics_counter("messages_awaiting_commit");
	/* presence messages the broker delivered (retained ones included) */
	bstats.presence = metrics_counter("presence_messages_total");
	/* chat messages that failed on their own: in message_quarantine */
	bstats.quarantined = metrics_counter("messages_quarantined_total");
	/* retained presence statuses deleted (zero-length publishes): a
	 * membership ended (presence_gone events, relay.c) */
	bstats.presence_cleared = metrics_counter("presence_cleared_total");
	/* statuses of non-members seen passing the hub, clears queued (ghosts.c) */
	bstats.presence_ghosts = metrics_counter("presence_ghosts_total");
	return 0;
}

/* Drops the broker connection with the PUBACKs the gate holds (messages not
 * yet committed), and forgets the batch being read: it comes back as DUPs.
 * A batch out at PostgreSQL runs to its end; its PUBACKs died with the
 * connection, so its messages come back too and are counted duplicates.
 * The next connect waits (backoff_failed). */
static void abort_connection(void)
{
	backoff_failed();
	gate_detach();
	metrics_set(bstats.awaiting_commit, 0);
	store_clear(filling);
	connected = 0;
}

/* Messages of this connection, in the broker's order, whose PUBACK may
 * leave: all of them up to the first one of a batch not yet committed. */
static uint64_t settled(void)
{
	uint64_t upto = gate_received();

	/* each batch is in the broker's order, and the one out is older; of
	 * the one out, those before part.lo are settled */
	if (inflight && inflight->conn == conn_id && inflight->msgs[part.lo].rx <= upto)
		upto = inflight->msgs[part.lo].rx - 1;
	if (filling->n && filling->conn == conn_id && filling->msgs[0].rx - 1 < upto)
		upto = filling->msgs[0].rx - 1;
	return upto;
}

/* An error PostgreSQL answered that one message may cause, the server
 * staying sound: a data or integrity error, a trigger's exception, its
 * statement timeout (dbtx tried again already).  Not: no answer at all
 * (""), the connection (08), a conflict (40, tried again already), the
 * server going or starting (57, but 57014), its resources or system (53,
 * 58, XX: a full disk), locks (55), the transaction or the login (25, 28),
 * the schema (3D, 3F, 42: a missing function fails every message alike):
 * there halving would quarantine every message, so the broker sends them
 * again after the back-off, as before. */
static int splittable(const char *state)
{
	static const char *const systemic[] = {"08", "25", "28", "3D", "3F", "40", "42",
					       "53", "55", "57", "58", "F0", "XX"};

	if (strlen(state) != 5)
		return 0;
	if (strcmp(state, "57014") == 0)
		return 1;
	for (size_t i = 0; i < sizeof(systemic) / sizeof(systemic[0]); i++)
		if (strncmp(state, systemic[i], 2) == 0)
			return 0;
	return 1;
}

/* The batch out is over: every message of it settled, or to come again. */
static void out_over(void)
{
	store_clear(inflight);
	inflight = NULL;
}

/* The part out is settled: 1 when the next part of the batch is to be sent,
 * 0 when the batch is over. */
static int out_advance(void)
{
	if (split_next(&part))
		return 1;
	out_over();
	return 0;
}

/* The part out failed: answered (the server rolled it back), or not sent
 * (no connection, out of memory: never a message's fault, and the last
 * error may be an older one's).  An answer one of its messages may cause
 * (splittable), on the connection the batch was read on:
 * its first half is next, in the broker's order, and a single message that
 * fails is quarantined and settled (store_quarantine), so that one message
 * never holds up everybody's (DESIGN: one user must not cost the others).
 * The batch of a connection gone comes back from the broker anyway.
 * Anything else, or a quarantine that failed: as ever, the batch is dropped
 * with the broker connection and its held PUBACKs, and the broker sends it
 * again after the back-off.  A message is never acknowledged unless it is
 * stored or quarantined. */
static void out_failed(struct mosquitto *mosq, int answered)
{
	char state[8], error[512];
	int split = answered && splittable(db_last_sqlstate());

	snprintf(state, sizeof(state), "%s", db_last_sqlstate());
	snprintf(error, sizeof(error), "%s", db_last_error());
	log_error("bridge: storing %zu message(s) failed: %s %s", part.hi - part.lo, state, error);
	if (split && (!connected || inflight->conn != conn_id)) {
		out_over();
		return;
	}
	if (split && split_halve(&part))
		return;
	if (split && store_quarantine(&inflight->msgs[part.lo], state, error, mosq) == 0) {
		out_advance();
		return;
	}
	out_over();
	if (connected) {
		abort_connection();
		if (backoff_ms < 500)
			backoff_ms = 500; /* PostgreSQL is failing: give it time */
	}
}

/* Sends the part of inflight out, if any; one that cannot be sent ends the
 * batch and the connection (out_failed). */
static void out_send(struct mosquitto *mosq)
{
	if (inflight && store_send(inflight, part.lo, part.hi) < 0)
		out_failed(mosq, 0);
}

/* libmosquitto's queue -> the gate -> the broker, PUBACKs as far as settled */
static void write_all(struct mosquitto *mosq)
{
	/* libmosquitto writes a packet per write(2) until the socketpair is
	 * full, and the gate empties it: take turns, a bounded number of times
	 * (what is left waits for POLLOUT on libmosquitto's socket) */
	for (int round = 0; round < WRITE_ROUNDS_MAX && connected; round++) {
		int rc;

		if (mosquitto_want_write(mosq) &&
		    (rc = mosquitto_loop_write(mosq, 1)) != MOSQ_ERR_SUCCESS) {
			log_warn("bridge: libmosquitto's write failed (%s)",
				 mosquitto_strerror(rc));
			break;
		}
		gate_release(settled());
		if (gate_pump() < 0) {
			log_warn("bridge: broker connection lost (%s)", gate_lost_reason());
			abort_connection();
			break;
		}
		if (!mosquitto_want_write(mosq))
			break;
	}
	metrics_set(bstats.awaiting_commit, gate_held());
}

/* ms until batch b is due (linger.h) */
static int batch_left_ms(const struct linger_rule *l, const struct batch *b, uint64_t now)
{
	return b->n ? linger_left_ms(l, b->n, b->msgs[0].received_us, b->msgs[b->n - 1].received_us,
				     now)
		    : 0;
}

int main(void)
{
	struct mosquitto *mosq;
	mosquitto_property *props = NULL, *props_standby = NULL;
	char secret[256], id[128];
	int batch_max, recv_max, rc, returning = 0;
	struct linger_rule lg;
	uint64_t next_relay_us = 0;
	int relay_woken = 1; /* a NOTIFY came since the last claim */

	log_init("bridge");
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	signal(SIGPIPE, SIG_IGN);
	batch_max = (int)cfg_int("TH_BRIDGE_BATCH_MAX", 1000, 1, BRIDGE_BATCH_HARD_MAX);
	lg.max = batch_max;
	lg.wait_ms = (int)cfg_int("TH_BRIDGE_BATCH_WAIT_MS", 5, 0, 1000);
	lg.linger_ms = (int)cfg_int("TH_BRIDGE_BATCH_LINGER_MS", 50, lg.wait_ms, 1000);
	snprintf(id, sizeof(id), "%s", cfg_str("TH_BRIDGE_ID", "th-bridge-1"));
	snprintf(sub_filter, sizeof(sub_filter), "$share/%s/chat/+/+",
		 cfg_str("TH_BRIDGE_GROUP", "bridge"));
	snprintf(presence_filter, sizeof(presence_filter), "$share/%s/presence/+/+",
		 cfg_str("TH_BRIDGE_GROUP", "bridge"));
	if (!cfg_str("TH_DB_CONNINFO", NULL) ||
	    db_init(cfg_str("TH_DB_CONNINFO", NULL), NULL, 10000) < 0) {
		fprintf(stderr, "bridge: TH_DB_CONNINFO is not set\n");
		return 1;
	}
	if (read_secret(secret, sizeof(secret)) < 0 || metrics_setup() < 0 || hubs_init() < 0)
		return 1;
	/* Redis: the call participant sets the plugin's signal ACL reads */
	if (cache_init_env(250, 0) < 0)
		return 1;
	mosquitto_lib_init();
	/* a fixed client id and no clean start: the broker keeps our session,
	 * and what we did not acknowledge, while we are away */
	mosq = mosquitto_new(id, false, NULL);
	if (!mosq || mosquitto_int_option(mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5) ||
	    mosquitto_username_pw_set(mosq, SERVICE_USER, secret) ||
	    mosquitto_threaded_set(mosq, true)) {
		fprintf(stderr, "bridge: libmosquitto setup failed\n");
		return 1;
	}
	mosquitto_connect_v5_callback_set(mosq, on_connect);
	mosquitto_disconnect_v5_callback_set(mosq, on_disconnect);
	mosquitto_message_v5_callback_set(mosq, on_message);
	mosquitto_publish_v5_callback_set(mosq, on_publish);
	relay_init(id);
	mosquitto_property_add_int32(&props, MQTT_PROP_SESSION_EXPIRY_INTERVAL, 7 * 86400);
	/* Unacknowledged messages the broker may have out to us: a batch at
	 * PostgreSQL, the next one filling, and one more on the way.  At most
	 * half of what a batch holds (BRIDGE_BATCH_HARD_MAX): every message read
	 * and not yet committed is in one of the two batches. */
	recv_max = 3 * batch_max < BRIDGE_BATCH_HARD_MAX / 2 ? 3 * batch_max
							     : BRIDGE_BATCH_HARD_MAX / 2;
	mosquitto_property_add_int16(&props, MQTT_PROP_RECEIVE_MAXIMUM, (uint16_t)recv_max);
	/* on the standby hub the session ends with the connection (hubs.c) */
	mosquitto_property_add_int16(&props_standby, MQTT_PROP_RECEIVE_MAXIMUM, (uint16_t)recv_max);
	log_info("bridge: %s -> PostgreSQL, batches of up to %d (closed after a %d ms pause or "
		 "%d ms), receive maximum %d",
		 sub_filter, batch_max, lg.wait_ms, lg.linger_ms, recv_max);

	while (!stopping || filling->n || inflight) {
		struct pollfd p[5];
		int np = 0, timeout = 1000, lfd, tfd;
		int ix_mosq = -1, ix_real = -1, ix_pair = -1, ix_tx = -1, relay_more = 0, relay_may;
		int listening;
		/* Read even while a full batch waits for the one out to commit:
		 * the broker's PUBACKs to our receipts, its PINGRESPs come in.
		 * The gate bounds the QoS 1 messages read and not settled
		 * (gate.c, clear_in); the half-batch bound is for QoS 0 chat,
		 * which it does not count. */
		int reading = connected && !stopping && !returning &&
			      filling->n < BRIDGE_BATCH_HARD_MAX / 2;
		uint64_t now = mono_us();

		if (!connected && !stopping) {
			if (backoff_ms)
				usleep((useconds_t)backoff_ms * 1000);
			rc = !hubs_reachable()
				     ? MOSQ_ERR_NO_CONN
				     : mosquitto_connect_bind_v5(mosq, hubs_host(), hubs_port(), 30,
								 NULL,
								 hubs_on_standby() ? props_standby
										   : props);
			if (rc == MOSQ_ERR_SUCCESS && gate_attach(mosq) < 0) {
				log_error("bridge: cannot set up the PUBACK gate");
				rc = MOSQ_ERR_ERRNO;
			}
			if (rc != MOSQ_ERR_SUCCESS) {
				backoff_failed();
				log_warn("bridge: cannot reach the broker at %s:%d (%s)",
					 hubs_host(), hubs_port(), mosquitto_strerror(rc));
				hubs_failed();
				continue;
			}
			conn_id++;
			connected = 1; /* until CONNACK says otherwise */
			write_all(mosq);
			continue;
		}
		/* The relay's claim blocks this loop for a round trip: not while a
		 * chat batch could go, but while one is out at PostgreSQL (on a
		 * connection of its own) the next cannot go anyway.  Batches now
		 * linger up to 50 ms under a stream: waiting for an empty one
		 * would leave the relay a claim per batch. */
		relay_may = filling->n == 0 || inflight;
		listening = connected && db_listen(EVENTS_CHANNEL) == 0;
		if (listening) {
			/* a new batch when woken (paced: relay.c), or on a timer
			 * (events committed while nobody listened); a batch out
			 * waits for its PUBACKs */
			int claim = relay_may && !relay_waiting() &&
				    (now >= next_relay_us ||
				     (relay_woken && now >= relay_paced_us()));

			rc = relay_step(mosq, claim);
			if (claim)
				relay_woken = 0;
			if (rc == 0)
				next_relay_us = now + 1000000;
			else if (rc < 0)
				next_relay_us = now + 500000;
			else if (!relay_waiting()) {
				/* a full batch went: the next one now */
				relay_more = 1;
				next_relay_us = 0;
			}
		}
		if (connected && mosquitto_socket(mosq) >= 0 && gate_real_fd() >= 0) {
			p[np].fd = mosquitto_socket(mosq);
			p[np].events = (short)((reading ? POLLIN : 0) |
					       (mosquitto_want_write(mosq) ? POLLOUT : 0));
			ix_mosq = np++;
			p[np].fd = gate_real_fd();
			p[np].events = gate_real_events();
			ix_real = np++;
			p[np].fd = gate_pair_fd();
			p[np].events = gate_pair_events();
			ix_pair = np++;
		}
		tfd = db_tx_fd();
		if (inflight && tfd >= 0) {
			p[np].fd = tfd;
			p[np].events = db_tx_events();
			ix_tx = np++;
		}
		lfd = db_listen_fd();
		if (lfd >= 0) {
			p[np].fd = lfd;
			p[np].events = POLLIN;
			np++;
		}
		if (relay_ready() || (relay_more && relay_may))
			timeout = 0; /* the relay has a step to take now */
		else if (listening && relay_woken && relay_may && !relay_waiting()) {
			/* (not while PostgreSQL is away: no claim could go) */
			uint64_t at = relay_paced_us();
			int left = at > now ? (int)((at - now + 999) / 1000) : 0;

			if (left < timeout)
				timeout = left; /* the paced claim */
		}
		if (filling->n && !inflight) {
			int left = batch_left_ms(&lg, filling, now);

			if (left < timeout)
				timeout = left; /* a relay step due now still goes first */
		}
		if (poll(p, (nfds_t)np, timeout) < 0 && errno != EINTR)
			break;
		if (ix_real >= 0 && (p[ix_real].revents || p[ix_pair].revents) && gate_pump() < 0) {
			log_warn("bridge: broker connection lost (%s)", gate_lost_reason());
			abort_connection();
		}
		if (connected && ix_mosq >= 0 && reading &&
		    (p[ix_mosq].revents & (POLLIN | POLLHUP | POLLERR))) {
			/* libmosquitto's loop_read reads one packet when none of
			 * our publishes is in flight, else as many as are (2.0.11
			 * ignores max_packets); the rest of what the gate copied is
			 * read here too, not one poll round per message (bounded,
			 * and by the batch buffer's half) */
			int more = 0, k = 0;

			do {
				rc = mosquitto_loop_read(mosq, 1);
				if (rc != MOSQ_ERR_SUCCESS) {
					log_warn("bridge: broker connection lost (%s)",
						 mosquitto_strerror(rc));
					abort_connection();
					break;
				}
				if (ioctl(mosquitto_socket(mosq), FIONREAD, &more) < 0)
					more = 0;
			} while (more > 0 && ++k < READ_ROUND_MAX &&
				 filling->n < BRIDGE_BATCH_HARD_MAX / 2);
		}
		offline_flush();
		ghosts_flush();
		if (lfd >= 0 && db_listen_drain() > 0)
			relay_woken = 1;
		if (calls_changed) {
			next_relay_us = 0; /* not paced */
			calls_changed = 0;
		}
		if (connected)
			mosquitto_loop_misc(mosq);
		if (inflight && (ix_tx < 0 || p[ix_tx].revents)) {
			struct db_res *r;

			rc = db_tx_poll(&r);
			if (rc > 0) {
				/* committed: its PUBACKs may go (write_all below) */
				store_done(inflight, part.lo, part.hi, r, connected ? mosq : NULL);
				if (out_advance())
					out_send(mosq);
			} else if (rc < 0) {
				out_failed(mosq, 1);
				out_send(mosq); /* the next part, if any */
			}
		}
		now = mono_us();
		if (filling->n && !inflight &&
		    (stopping || !connected || batch_left_ms(&lg, filling, now) == 0)) {
			struct batch *next = filling == &batches[0] ? &batches[1] : &batches[0];

			store_clear(next);
			if (!connected || filling->conn != conn_id) {
				store_clear(filling); /* unacked: the broker sends them again */
			} else {
				/* at most batch_max per transaction: what was read
				 * beyond that starts the next batch, in order */
				if (filling->n > (size_t)batch_max) {
					next->n = filling->n - (size_t)batch_max;
					memcpy(next->msgs, filling->msgs + batch_max,
					       next->n * sizeof(next->msgs[0]));
					next->conn = filling->conn;
					filling->n = (size_t)batch_max;
				}
				inflight = filling;
				filling = next;
				split_init(&part, inflight->n);
				out_send(mosq);
			}
		}
		/* on the standby and the primary answers again: leave once every
		 * message read is committed (its PUBACKs out), and attach there */
		if (connected && !returning && hubs_primary_back(mono_us())) {
			log_info("bridge: the primary hub answers again: moving back to it");
			returning = 1;
		}
		if (returning && connected && filling->n == 0 && !inflight) {
			write_all(mosq);
			mosquitto_disconnect_v5(mosq, 0, NULL);
			(void)gate_flush(mosq);
			abort_connection();
			backoff_ms = 0; /* left on purpose: attach there at once */
			hubs_use_primary();
			returning = 0;
			continue;
		}
		write_all(mosq);
	}
	if (connected) {
		write_all(mosq); /* the last PUBACKs: everything read is committed */
		mosquitto_disconnect_v5(mosq, 0, NULL);
		(void)gate_flush(mosq); /* the DISCONNECT; the broker may be gone */
	}
	gate_detach();
	mosquitto_property_free_all(&props);
	mosquitto_property_free_all(&props_standby);
	mosquitto_destroy(mosq);
	mosquitto_lib_cleanup();
	metrics_close();
	db_close();
	cache_close();
	log_info("bridge: stopped");
	return 0;
}
