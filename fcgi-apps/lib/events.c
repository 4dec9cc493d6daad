/* events: one pg_notify per change; payloads stay far under the 8000-byte
 * NOTIFY limit because they hold a type and ids only. */
#include "events.h"

#include <stdio.h>

#include "db.h"

int events_emit(struct http_req *req, const char *type, int64_t community_id,
		const char *k1, int64_t v1, const char *k2, int64_t v2)
{
	char payload[256];
	const char *params[] = {payload};
	struct db_res *r;
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
	r = db_exec_or_reply(req, DB_PRIMARY, "SELECT pg_notify('" EVENTS_CHANNEL "', $1)", 1,
			     params);
	if (!r)
		return -1;
	db_res_free(r);
	return 0;
}
