/* store: chat messages from MQTT into PostgreSQL, in batches. */
#include <json-c/json.h>
#include <mosquitto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bridge.h"
#include "db.h"
#include "imap.h"
#include "jhcore.h"
#include "log.h"
#include "metrics.h"
#include "topic.h"
#include "mono.h"
#include "unreadver.h"

int store_accept(struct batch *b, const char *topic, const void *payload, int len, int dup)
{
	struct topic t;
	struct json_object *o = NULL, *v;
	struct chat_msg *m;
	const char *why;

	(void)dup;
	/* the same rules the plugin applied at publish time: a message that got
	 * past it some other way is dropped and counted, never stored */
	if (topic_parse(topic, 0, &t) != TOPIC_CHAT || len < 0 ||
	    topic_chat_payload_ok(payload, (uint32_t)len, &why) < 0 ||
	    b->n >= BRIDGE_BATCH_HARD_MAX)
		goto drop;
	o = jh_parse(payload, (size_t)len);
	if (!o)
		goto drop;
	m = &b->msgs[b->n];
	memset(m, 0, sizeof(*m));
	json_object_object_get_ex(o, "id", &v);
	snprintf(m->id, sizeof(m->id), "%s", json_object_get_string(v));
	json_object_object_get_ex(o, "body", &v);
	m->body = strdup(json_object_get_string(v));
	if (json_object_object_get_ex(o, "reply_to", &v) && v)
		snprintf(m->reply_to, sizeof(m->reply_to), "%s", json_object_get_string(v));
	json_object_put(o);
	if (!m->body)
		goto drop;
	m->channel_id = t.id[0];
	m->sender_id = t.id[1]; /* the sender is the topic's: the plugin enforced it */
	m->received_us = mono_us();
	b->n++;
	return 0;
drop:
	metrics_add(bstats.dropped, 1);
	log_warn("bridge: dropped an invalid message on %.80s", topic);
	return -1;
}

void store_clear(struct batch *b)
{
	for (size_t i = 0; i < b->n; i++)
		free(b->msgs[i].body);
	b->n = 0;
	b->n_qos0 = 0;
}

/* store_pg_array() of messages [from, to) of b */
static char *pg_array(const struct batch *b, size_t from, size_t to, int field)
{
	size_t cap = 16, len = 0, i;
	char *out = malloc(cap), *tmp;

	if (!out)
		return NULL;
	out[len++] = '{';
	for (i = from; i < to; i++) {
		const struct chat_msg *m = &b->msgs[i];
		char num[24];
		const char *s;

		switch (field) {
		case 0:
			s = m->id;
			break;
		case 1:
			snprintf(num, sizeof(num), "%lld", (long long)m->channel_id);
			s = num;
			break;
		case 2:
			snprintf(num, sizeof(num), "%lld", (long long)m->sender_id);
			s = num;
			break;
		case 3:
			s = m->body;
			break;
		default:
			s = m->reply_to[0] ? m->reply_to : NULL;
			break;
		}
		/* worst case every byte escaped, plus quotes and a comma */
		while (len + (s ? 2 * strlen(s) : 4) + 8 > cap) {
			cap *= 2;
			tmp = realloc(out, cap);
			if (!tmp) {
				free(out);
				return NULL;
			}
			out = tmp;
		}
		if (i > from)
			out[len++] = ',';
		if (!s) {
			memcpy(out + len, "NULL", 4);
			len += 4;
			continue;
		}
		out[len++] = '"';
		for (; *s; s++) {
			if (*s == '"' || *s == '\\')
				out[len++] = '\\';
			out[len++] = *s;
		}
		out[len++] = '"';
	}
	out[len++] = '}';
	out[len] = '\0';
	return out;
}

char *store_pg_array(const struct batch *b, int field)
{
	return pg_array(b, 0, b->n, field);
}

/* Publishes {"type": type, "ids": ids, "reason": reason (when given)} to
 * user/<sender>/inbox, through the edge origin when known (NULL or "":
 * every edge).  Takes ids.  1 when published. */
static int inbox_notice(struct mosquitto *mosq, const char *sender, const char *origin,
			const char *type, const char *reason, struct json_object *ids)
{
	struct json_object *o = json_object_new_object();
	const char *s;
	char topic[64];
	int mid = 0;
	int rc = 0;

	if (!o) {
		json_object_put(ids);
		return 0;
	}
	json_object_object_add(o, "type", json_object_new_string(type));
	json_object_object_add(o, "ids", ids);
	if (reason)
		json_object_object_add(o, "reason", json_object_new_string(reason));
	s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	if (origin && origin[0])
		snprintf(topic, sizeof(topic), TOPIC_ORIGIN_PREFIX "%s/user/%s/inbox", origin,
			 sender);
	else
		snprintf(topic, sizeof(topic), "user/%s/inbox", sender);
	if (s && mosquitto_publish_v5(mosq, &mid, topic, (int)strlen(s), s, 1, false, NULL) ==
			 MOSQ_ERR_SUCCESS) {
		rc = 1;
		relay_mid_issued(mid); /* the relay must not take its PUBACK for one of its own */
	}
	json_object_put(o);
	return rc;
}

/* The inbox notice of one sender (inbox_notice): rows [from, to) of r are
 * this sender's, ordered by id; only those whose status is one of the
 * characters of want are named, each once.  1 when published, 0 when none
 * to name. */
static int notice(struct mosquitto *mosq, struct db_res *r, int from, int to, const char *want,
		  const char *type, const char *reason, const char *origin)
{
	struct json_object *ids = json_object_new_array();
	const char *last = NULL;
	int n = 0;

	if (!ids)
		return 0;
	for (int i = from; i < to; i++) {
		const char *id = db_res_get(r, i, 0);
		const char *st = db_res_get(r, i, 2);

		if (!st[0] || !strchr(want, st[0]) || (last && strcmp(last, id) == 0))
			continue;
		json_object_array_add(ids, json_object_new_string(id));
		last = id;
		n++;
	}
	if (!n) {
		json_object_put(ids);
		return 0;
	}
	return inbox_notice(mosq, db_res_get(r, from, 1), origin, type, reason, ids);
}

/* Per sender of the messages origins_build() took (b's [from, to)): the
 * edge all of their messages there came in through (the hub's stamp), NULL
 * when none or several (a user with tabs on two edges): then the notices
 * go to every edge, as to a client of the hub itself.  origins: sender id
 * -> index + 1 of a message with the common origin, or -1. */
static const char *sender_origin(const struct batch *b, struct imap *origins, int64_t sender)
{
	int64_t *v = imap_get(origins, sender);

	return v && *v > 0 ? b->msgs[*v - 1].origin : NULL;
}

static void origins_build(const struct batch *b, size_t from, size_t to, struct imap *origins)
{
	for (size_t i = from; i < to; i++) {
		const struct chat_msg *m = &b->msgs[i];
		int64_t *v = imap_get(origins, m->sender_id);

		if (!v) {
			if (imap_put(origins, m->sender_id, m->origin[0] ? (int64_t)i + 1 : -1) < 0)
				return; /* out of memory: those not in it go to every edge */
		} else if (*v > 0 && strcmp(b->msgs[*v - 1].origin, m->origin) != 0) {
			*v = -1;
		}
	}
}

/* Per sender (r is ordered by sender, then id): a receipt
 * {"type":"stored","ids":[...]} naming the ids stored as this sender's in
 * this channel (new, or stored before: a re-send), and a notice
 * {"type":"refused","reason":"id_taken","ids":[...]} naming those another
 * message holds, so the client stops re-sending them (it may send the text
 * again under a new id).  Never a receipt for an id stored as somebody
 * else's: the client would forget a message that was not stored.  Both go
 * to the sender's edge when the batch knows it (sender_origin).  The
 * messages are [first, last) of b. */
static void receipts(struct mosquitto *mosq, struct db_res *r, const struct batch *b, size_t first,
		     size_t last)
{
	int n = db_res_rows(r), from = 0;
	struct imap origins;
	int have = imap_init(&origins, 64) == 0;

	if (have)
		origins_build(b, first, last, &origins);
	while (from < n) {
		const char *sender = db_res_get(r, from, 1);
		const char *origin = have ? sender_origin(b, &origins, strtoll(sender, NULL, 10))
					  : NULL;
		int to = from + 1;

		while (to < n && strcmp(db_res_get(r, to, 1), sender) == 0)
			to++;
		/* status 1 (new) and 0 (already this sender's) both mean stored */
		if (notice(mosq, r, from, to, "10", "stored", NULL, origin))
			metrics_add(bstats.receipts, 1);
		notice(mosq, r, from, to, "2", "refused", "id_taken", origin);
		from = to;
	}
	if (have)
		imap_free(&origins);
}

/* The senders of what this batch stored: their markers and their channels'
 * last seq moved, so their cached unread answers (lib/unreadver.h) are
 * made old before the `stored` receipt tells them; the other members'
 * follow with the batch's `channel_activity` and `unread` events. */
static void senders_bump(struct db_res *r)
{
	static struct unreadver_batch vb;

	for (int i = 0; i < db_res_rows(r); i++)
		if (strcmp(db_res_get(r, i, 2), "1") == 0)
			unreadver_add_user(&vb, strtoll(db_res_get(r, i, 1), NULL, 10));
	unreadver_flush(&vb);
}

/* message_store() (db/migrations/0016_message_store.sql) stores a batch as
 * the REST route stores one message: it locks the batch's channels in id
 * order (two bridges storing into one channel take turns, so sequence
 * numbers never collide), then inserts.  One row per message of the batch:
 * (id, sender_id, status, reply_cleared, seq), ordered by sender then id,
 * where status is
 *   1  stored now;
 *   0  stored before (or earlier in this batch) as this sender's in this
 *      channel: a re-send, idempotent;
 *   2  refused: the id belongs to a message of another sender or channel
 *      (API.md: an id belongs to the first sender and channel that stored
 *      it), or a concurrent REST post took it between our probe and insert;
 *   3  dropped: the channel or the sender is gone.
 * The first message of the batch with an id wins, in the broker's order.
 * reply_to is kept only when it names a message of the same channel, stored
 * before or earlier in this batch; otherwise the message is stored with
 * reply_to null (reply_cleared true).  The query plan and its measurements
 * are with the function; tests/load/bridge-sql-ab compares its insert
 * between two revisions. */
static const char STORE_SQL[] =
	"SELECT id, sender_id, status, reply_cleared FROM "
	"message_store($1::uuid[], $2::bigint[], $3::bigint[], $4::text[], $5::uuid[])";

int store_send(const struct batch *b, size_t from, size_t to)
{
	char *arr[5] = {0};
	const char *params[5];
	const char *const sqls[1] = {STORE_SQL};
	const int nparams[1] = {5};
	const char *const *pp[1] = {params};
	int i, rc = -1;

	for (i = 0; i < 5; i++) {
		arr[i] = pg_array(b, from, to, i);
		if (!arr[i])
			goto out;
		params[i] = arr[i];
	}
	/* libpq copies the parameters into its buffer: arr is ours to free */
	rc = db_tx_send(1, sqls, nparams, pp);
	if (rc < 0)
		log_error("bridge: sending a batch of %zu failed: %s", to - from, db_last_error());
out:
	for (i = 0; i < 5; i++)
		free(arr[i]);
	return rc;
}

void store_done(const struct batch *b, size_t from, size_t to, struct db_res *r,
		struct mosquitto *mosq)
{
	uint64_t oldest, now, count[4] = {0};
	uint64_t cleared = 0;
	size_t k;

	for (int i = 0; i < db_res_rows(r); i++) {
		int st = atoi(db_res_get(r, i, 2));

		if (st >= 0 && st < 4)
			count[st]++;
		cleared += strcmp(db_res_get(r, i, 3), "t") == 0;
	}
	metrics_add(bstats.persisted, count[1]);
	metrics_add(bstats.duplicates, count[0]);
	metrics_add(bstats.refused_id_taken, count[2]);
	metrics_add(bstats.dropped, count[3]);
	metrics_add(bstats.reply_to_cleared, cleared);
	if (count[2])
		log_warn("bridge: refused %llu message(s) whose id belongs to another sender or "
			 "channel",
			 (unsigned long long)count[2]);
	metrics_add(bstats.batches, 1);
	metrics_add(bstats.batch_messages, to - from);
	oldest = b->msgs[from].received_us;
	for (k = from + 1; k < to; k++)
		if (b->msgs[k].received_us < oldest)
			oldest = b->msgs[k].received_us;
	now = mono_us();
	metrics_set(bstats.lag_ms, (now - oldest) / 1000);
	metrics_observe(0, 200, now - oldest);
	if (mosq) {
		senders_bump(r);
		receipts(mosq, r, b, from, to);
	}
	db_res_free(r);
}

/* message_quarantine (db/migrations/0043_message_quarantine.sql): one row
 * per id; the same message quarantined again counts an attempt and keeps
 * the latest error */
static const char QUARANTINE_SQL[] =
	"INSERT INTO message_quarantine "
	"(id, channel_id, sender_id, body, reply_to, sqlstate, error) "
	"VALUES ($1::uuid, $2::bigint, $3::bigint, $4, $5::uuid, $6, $7) "
	"ON CONFLICT (id) DO UPDATE SET attempts = message_quarantine.attempts + 1, "
	"last_at = now(), sqlstate = EXCLUDED.sqlstate, error = EXCLUDED.error";

int store_quarantine(const struct chat_msg *m, const char *sqlstate, const char *error,
		     struct mosquitto *mosq)
{
	char channel[24], sender[24];
	const char *p[7] = {m->id,    channel, sender, m->body, m->reply_to[0] ? m->reply_to : NULL,
			    sqlstate, error};
	struct db_res *r;
	struct json_object *ids;

	snprintf(channel, sizeof(channel), "%lld", (long long)m->channel_id);
	snprintf(sender, sizeof(sender), "%lld", (long long)m->sender_id);
	r = db_exec(DB_PRIMARY, QUARANTINE_SQL, 7, p);
	if (!r) {
		log_error("bridge: quarantining message %s failed: %s", m->id, db_last_error());
		return -1;
	}
	db_res_free(r);
	metrics_add(bstats.quarantined, 1);
	/* the error may quote the body: bounded (log_clean'd by db already) */
	log_error("bridge: message %s of user %s in channel %s quarantined: %s %.200s", m->id,
		  sender, channel, sqlstate, error);
	ids = mosq ? json_object_new_array() : NULL;
	if (ids) {
		json_object_array_add(ids, json_object_new_string(m->id));
		inbox_notice(mosq, sender, m->origin, "refused", "store_failed", ids);
	}
	return 0;
}
