/* events: one outbox row and one pg_notify per change. */
#include "events.h"

#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "db.h"

#define EVENTS_MAX_BYTES (256 * 1024) /* the outbox row; NOTIFY gets a digest */

static int queue(struct http_req *req, const char *payload)
{
	const char *params[] = {payload};
	struct db_res *r;

	r = db_exec_or_reply(req, DB_PRIMARY,
			     /* NOTIFY carries at most 8000 bytes: a larger event
			      * (a long chat message) is announced without
			      * message.body, naming its outbox row; the bridge
			      * reads the row */
			     "WITH o AS (INSERT INTO event_outbox (payload) VALUES ($1::text::jsonb) "
			     "RETURNING id, payload) SELECT pg_notify('" EVENTS_CHANNEL "', "
			     "CASE WHEN octet_length($1::text) <= 7168 THEN $1::text "
			     "ELSE ((o.payload #- '{message,body}') || jsonb_build_object('outbox_id', o.id))::text "
			     "END) FROM o",
			     1, params);
	if (!r)
		return -1;
	db_res_free(r);
	return 0;
}

int events_emit_json(struct http_req *req, struct json_object *event)
{
	const char *s = json_object_to_json_string_ext(event, JSON_C_TO_STRING_PLAIN);
	int rc;

	if (!s || strlen(s) > EVENTS_MAX_BYTES) {
		json_object_put(event);
		http_reply_error(req, TH_EINTERNAL, "event too large", NULL);
		return -1;
	}
	rc = queue(req, s);
	json_object_put(event);
	return rc;
}

int events_emit(struct http_req *req, const char *type, int64_t community_id,
		const char *k1, int64_t v1, const char *k2, int64_t v2)
{
	char payload[256];
	int n;

	/* type and keys are literals of ours; the values are integers */
	n = snprintf(payload, sizeof(payload), "{\"type\":\"%s\",\"community_id\":%lld", type,
		     (long long)community_id);
	if (k1)
		n += snprintf(payload + n, sizeof(payload) - (size_t)n, ",\"%s\":%lld", k1,
			      (long long)v1);
	if (k2)
		n += snprintf(payload + n, sizeof(payload) - (size_t)n, ",\"%s\":%lld", k2,
			      (long long)v2);
	snprintf(payload + n, sizeof(payload) - (size_t)n, "}");
	return queue(req, payload);
}
