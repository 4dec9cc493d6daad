/* events: one outbox row and one pg_notify per change. */
#include "events.h"

#include "db.h"

int events_queue(const char *payload)
{
	const char *params[] = {payload};
	struct db_res *r;

	r = db_exec(DB_PRIMARY,
		    /* NOTIFY carries at most 8000 bytes: a larger event (a long
		     * chat message) is announced without message.body, naming
		     * its outbox row; the bridge reads the row */
		    "WITH o AS (INSERT INTO event_outbox (payload) VALUES ($1::text::jsonb) "
		    "RETURNING id, payload) SELECT pg_notify('" EVENTS_CHANNEL "', "
		    "CASE WHEN octet_length($1::text) <= 7168 THEN $1::text "
		    "ELSE ((o.payload #- '{message,body}') || jsonb_build_object('outbox_id', "
		    "o.id))::text "
		    "END) FROM o",
		    1, params);
	if (!r)
		return -1;
	db_res_free(r);
	return 0;
}
