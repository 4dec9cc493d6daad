/* relay: server events from the outbox to MQTT.
 *
 * Events are rows of event_outbox, written by the apps in the transaction
 * of their change.  A batch is locked (SKIP LOCKED, so several bridges
 * share the work), published with QoS 1, written to the broker, and only
 * then deleted: a crash in between publishes an event twice, never zero
 * times.  Routing:
 *   "chat_message" (a REST-posted message) -> chat/<channel>/<sender>, the
 *                                            message itself as the payload
 *   any event with community_id          -> events/community/<id>
 *   any event with user_id               -> user/<id>/inbox as well
 *   any event with "inbox": [ids]        -> user/<id>/inbox for each id */
#include <json-c/json.h>
#include <mosquitto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bridge.h"
#include "db.h"
#include "jh.h"
#include "log.h"
#include "metrics.h"

#define RELAY_BATCH "200"

static void publish(struct mosquitto *mosq, const char *topic, const char *payload)
{
	if (mosquitto_publish_v5(mosq, NULL, topic, (int)strlen(payload), payload, 1, false,
				 NULL) == MOSQ_ERR_SUCCESS)
		metrics_add(bstats.events, 1);
}

static int64_t int_field(struct json_object *o, const char *k)
{
	struct json_object *v;

	return json_object_object_get_ex(o, k, &v) && json_object_is_type(v, json_type_int)
		       ? json_object_get_int64(v) : 0;
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
		json_object_put(o);
		return;
	}
	type = json_object_get_string(v);
	if (strcmp(type, "chat_message") == 0) {
		struct json_object *msg;

		if (json_object_object_get_ex(o, "message", &msg)) {
			snprintf(topic, sizeof(topic), "chat/%lld/%lld",
				 (long long)int_field(o, "channel_id"), (long long)int_field(o, "sender_id"));
			publish(mosq, topic, json_object_to_json_string_ext(msg, JSON_C_TO_STRING_PLAIN));
		}
		json_object_put(o);
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
		for (size_t i = 0; i < json_object_array_length(v) && i < 1000; i++) {
			int64_t to = json_object_get_int64(json_object_array_get_idx(v, i));

			if (to > 0 && to != uid) {
				snprintf(topic, sizeof(topic), "user/%lld/inbox", (long long)to);
				publish(mosq, topic, text);
			}
		}
	}
	json_object_put(o);
}

int relay_drain(struct mosquitto *mosq)
{
	struct db_res *r;
	int n, i, total = 0;

	for (;;) {
		if (db_begin() < 0)
			return -1;
		r = db_exec(DB_PRIMARY,
			    "SELECT id, payload::text FROM event_outbox ORDER BY id "
			    "LIMIT " RELAY_BATCH " FOR UPDATE SKIP LOCKED",
			    0, NULL);
		if (!r) {
			db_rollback();
			return -1;
		}
		n = db_res_rows(r);
		if (n == 0) {
			db_res_free(r);
			db_rollback();
			return total;
		}
		for (i = 0; i < n; i++)
			route(mosq, db_res_get(r, i, 1));
		/* hand the publishes to the broker before forgetting the rows:
		 * through the gate, which holds nothing but PUBACKs */
		if (gate_flush(mosq) < 0) {
			db_res_free(r);
			db_rollback();
			return -1;
		}
		{
			/* exactly the rows published: an event of a transaction that
			 * committed meanwhile with a lower id waits for the next round */
			size_t cap = (size_t)n * 21 + 3, len = 0;
			char *ids = malloc(cap);
			const char *p[1];
			struct db_res *d = NULL;

			if (ids) {
				ids[len++] = '{';
				for (i = 0; i < n; i++)
					len += (size_t)snprintf(ids + len, cap - len, "%s%s", i ? "," : "",
								db_res_get(r, i, 0));
				snprintf(ids + len, cap - len, "}");
				p[0] = ids;
				d = db_exec(DB_PRIMARY,
					    "DELETE FROM event_outbox WHERE id = ANY($1::bigint[])", 1, p);
			}
			free(ids);
			db_res_free(r);
			if (!d || db_commit() < 0) {
				db_res_free(d);
				db_rollback();
				return -1;
			}
			db_res_free(d);
		}
		total += n;
	}
}
