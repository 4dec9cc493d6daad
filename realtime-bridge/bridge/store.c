/* store: chat messages from MQTT into PostgreSQL, in batches. */
#include <json-c/json.h>
#include <mosquitto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bridge.h"
#include "db.h"
#include "jh.h"
#include "log.h"
#include "metrics.h"
#include "topic.h"

uint64_t bridge_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

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
	m->received_us = bridge_now_us();
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
}

char *store_pg_array(const struct batch *b, int field)
{
	size_t cap = 16, len = 0, i;
	char *out = malloc(cap), *tmp;

	if (!out)
		return NULL;
	out[len++] = '{';
	for (i = 0; i < b->n; i++) {
		const struct chat_msg *m = &b->msgs[i];
		char num[24];
		const char *s;

		switch (field) {
		case 0: s = m->id; break;
		case 1: snprintf(num, sizeof(num), "%lld", (long long)m->channel_id); s = num; break;
		case 2: snprintf(num, sizeof(num), "%lld", (long long)m->sender_id); s = num; break;
		case 3: s = m->body; break;
		default: s = m->reply_to[0] ? m->reply_to : NULL; break;
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
		if (i)
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

static int cmp_id(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Number of distinct message ids in the batch. */
static size_t distinct_ids(const struct batch *b)
{
	const char **ids = malloc(b->n * sizeof(*ids));
	size_t i, n = 0;

	if (!ids)
		return b->n;
	for (i = 0; i < b->n; i++)
		ids[i] = b->msgs[i].id;
	qsort(ids, b->n, sizeof(*ids), cmp_id);
	for (i = 0; i < b->n; i++)
		if (i == 0 || strcmp(ids[i], ids[i - 1]) != 0)
			n++;
	free(ids);
	return n;
}

/* One receipt per sender: {"type":"stored","ids":[...]} to user/<id>/inbox. */
static void receipts(struct mosquitto *mosq, struct db_res *r)
{
	int n = db_res_rows(r), i, j;
	char *done = calloc((size_t)n + 1, 1);

	if (!done)
		return;
	for (i = 0; i < n; i++) {
		struct json_object *o, *ids;
		const char *sender = db_res_get(r, i, 1), *s;
		char topic[64];

		if (done[i])
			continue;
		o = json_object_new_object();
		ids = json_object_new_array();
		for (j = i; j < n; j++) {
			if (!done[j] && strcmp(db_res_get(r, j, 1), sender) == 0) {
				json_object_array_add(ids, json_object_new_string(db_res_get(r, j, 0)));
				done[j] = 1;
			}
		}
		json_object_object_add(o, "type", json_object_new_string("stored"));
		json_object_object_add(o, "ids", ids);
		s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
		snprintf(topic, sizeof(topic), "user/%s/inbox", sender);
		if (mosquitto_publish_v5(mosq, NULL, topic, (int)strlen(s), s, 1, false, NULL) ==
		    MOSQ_ERR_SUCCESS)
			metrics_add(bstats.receipts, 1);
		json_object_put(o);
	}
	free(done);
}

/* Lock the channels in id order: two bridges storing into the same channel
 * take turns, so sequence numbers never collide.  A statement of its own:
 * the insert's snapshot must be taken after the locks are held, or it could
 * read a last_seq another transaction moved on meanwhile. */
static const char LOCK_SQL[] =
	"SELECT id FROM channels WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE";

/* Returns every message of the batch that is stored now: the new ones and
 * those stored before (a redelivery), each once.  EXPLAIN ANALYZE (generic
 * plan, 800 rows, 1M in messages): the probe of existing ids is an index
 * scan of messages_pkey with = ANY, the hash joins are over the batch's own
 * rows, and channels and users are index lookups: nothing scans messages. */
static const char INSERT_SQL[] =
	"WITH input AS (SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::bigint[], "
	"  $4::text[], $5::uuid[]) WITH ORDINALITY AS t(id, channel_id, sender_id, body, "
	"  reply_to, ord)), "
	/* = ANY(array) probes the primary key per id; a NOT EXISTS against the
	 * input rows may be planned as an anti-join over the whole table, which
	 * grows with every batch */
	"existing AS MATERIALIZED (SELECT m.id FROM messages m WHERE m.id = ANY($1::uuid[])), "
	"fresh AS (SELECT DISTINCT ON (i.id) i.* FROM input i "
	"  WHERE NOT EXISTS (SELECT 1 FROM existing e WHERE e.id = i.id) ORDER BY i.id, i.ord), "
	"numbered AS (SELECT f.*, c.last_seq + row_number() OVER "
	"  (PARTITION BY f.channel_id ORDER BY f.ord) AS seq FROM fresh f "
	"  JOIN channels c ON c.id = f.channel_id "
	"  JOIN users u ON u.id = f.sender_id), "
	"ins AS (INSERT INTO messages (id, channel_id, sender_id, body, reply_to, seq) "
	"  SELECT id, channel_id, sender_id, body, reply_to, seq FROM numbered "
	"  ON CONFLICT (id) DO NOTHING RETURNING id, channel_id, seq, sender_id), "
	"upd AS (UPDATE channels c SET last_seq = x.top FROM (SELECT channel_id, max(seq) "
	"  AS top FROM ins GROUP BY channel_id) x WHERE c.id = x.channel_id) "
	"SELECT id::text, sender_id::text, 1 FROM ins "
	"UNION ALL SELECT DISTINCT i.id::text, i.sender_id::text, 0 FROM input i "
	"  JOIN existing e ON e.id = i.id";

int store_send(struct batch *b)
{
	char *arr[5] = {0};
	const char *params[5];
	const char *const sqls[2] = {LOCK_SQL, INSERT_SQL};
	const int nparams[2] = {1, 5};
	const char *const *pp[2];
	int i, rc = -1;

	for (i = 0; i < 5; i++) {
		arr[i] = store_pg_array(b, i);
		if (!arr[i])
			goto out;
		params[i] = arr[i];
	}
	pp[0] = &params[1];
	pp[1] = params;
	/* libpq copies the parameters into its buffer: arr is ours to free */
	rc = db_tx_send(2, sqls, nparams, pp);
	if (rc < 0)
		log_error("bridge: sending a batch of %zu failed: %s", b->n, db_last_error());
out:
	for (i = 0; i < 5; i++)
		free(arr[i]);
	return rc;
}

void store_done(struct batch *b, struct db_res *r, struct mosquitto *mosq)
{
	uint64_t oldest, now;
	int i, stored = 0;
	size_t k, uniq;

	for (i = 0; i < db_res_rows(r); i++)
		stored += strcmp(db_res_get(r, i, 2), "1") == 0;
	metrics_add(bstats.persisted, (uint64_t)stored);
	metrics_add(bstats.duplicates, (uint64_t)(db_res_rows(r) - stored));
	/* distinct ids neither stored nor already there: channel or sender
	 * gone (an id twice in one batch is a duplicate, not a drop) */
	uniq = distinct_ids(b);
	if ((size_t)db_res_rows(r) < uniq)
		metrics_add(bstats.dropped, uniq - (size_t)db_res_rows(r));
	metrics_add(bstats.duplicates, b->n - uniq);
	metrics_add(bstats.batches, 1);
	metrics_add(bstats.batch_messages, b->n);
	oldest = b->msgs[0].received_us;
	for (k = 1; k < b->n; k++)
		if (b->msgs[k].received_us < oldest)
			oldest = b->msgs[k].received_us;
	now = bridge_now_us();
	metrics_set(bstats.lag_ms, (now - oldest) / 1000);
	metrics_observe(0, 200, now - oldest);
	if (mosq)
		receipts(mosq, r);
	db_res_free(r);
	store_clear(b);
}
