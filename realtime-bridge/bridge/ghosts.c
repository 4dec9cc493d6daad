/* ghosts: statuses of non-members seen on presence/ are cleared again.
 *
 * A membership that ends has its retained status cleared on every broker
 * (migration 0046, relay.c presence_gone).  One can come back: an edge whose
 * bridge was away from the hub when the clear went out (the hub restarting,
 * the network) kept its copy, and 2.0.11 sends the hub every retained
 * message under a bridged topic when the bridge reconnects, from where it
 * reaches every broker again; or a broker announced a user's "online" from
 * a membership mirror not yet updated, right after the leave's clear went
 * out.  Each passes the hub as a live message, and this bridge's presence
 * subscription sees it: the pairs read in a round are looked up in one
 * statement, and those that are no membership get a presence_gone event
 * (presence_ghosts()), which the relay publishes after it checked them
 * again.  A lookup that fails is logged and dropped: this is the repair
 * path, the clear itself is in the outbox. */
#include <stdio.h>
#include <stdlib.h>

#include "bridge.h"
#include "db.h"
#include "ids.h"
#include "log.h"
#include "metrics.h"

#define GHOSTS_MAX 1024 /* pairs of one lookup */

static int64_t cs[GHOSTS_MAX], us[GHOSTS_MAX];
static size_t n;

void ghosts_note(const char *topic)
{
	struct topic t;

	if (topic_parse(topic, 0, &t) != TOPIC_PRESENCE)
		return;
	if (n == GHOSTS_MAX)
		ghosts_flush();
	cs[n] = t.id[0];
	us[n++] = t.id[1];
}

void ghosts_flush(void)
{
	static char ca[IDS_ARRAY_SIZE(GHOSTS_MAX)], ua[IDS_ARRAY_SIZE(GHOSTS_MAX)];
	const char *p[2] = {ca, ua};
	struct db_res *r;
	long made;

	if (n == 0)
		return;
	ids_array(ca, sizeof(ca), cs, n);
	ids_array(ua, sizeof(ua), us, n);
	r = db_exec(DB_PRIMARY, "SELECT presence_ghosts($1::bigint[], $2::bigint[])", 2, p);
	if (!r) {
		log_warn("bridge: looking up the members of %zu presence statuses failed: %s", n,
			 db_last_error());
		n = 0;
		return;
	}
	made = db_res_rows(r) == 1 ? strtol(db_res_get(r, 0, 0), NULL, 10) : 0;
	if (made > 0) {
		log_info("bridge: presence of non-members seen: %ld clear event(s) queued", made);
		metrics_add(bstats.presence_ghosts, (uint64_t)made);
	}
	db_res_free(r);
	n = 0;
}
