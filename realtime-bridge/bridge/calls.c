/* calls: a user who went offline leaves their calls.
 *
 * The plugin publishes a retained {"status":"offline"} to
 * presence/<community>/<user> when a user's last connection closes, counted
 * over every broker in Redis (lib/presence.h: a tab
 * closing while another is open on another edge announces nothing), or when
 * the broker holding it died and its lease ran out.  The
 * bridge listens to those (as the service account) and removes the user from
 * every ongoing call; a call whose last participant left ends.  The same
 * events as a REST leave are written to the outbox (call_left, call_ended)
 * and the Redis participant sets the plugin's signal ACL reads are updated.
 * Idempotent: a user in several communities goes offline once per
 * community, and the second time finds nothing to leave. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bridge.h"
#include "cache.h"
#include "db.h"
#include "ids.h"
#include "log.h"

static void redis_leave(const char *uid, const char *call, int ended)
{
	char ckey[64], ukey[64];
	const char *srem[] = {"SREM", ckey, uid};
	const char *urem[] = {"SREM", ukey, call};
	const char *del[] = {"DEL", ckey};

	snprintf(ckey, sizeof(ckey), "th:call:%s:participants", call);
	snprintf(ukey, sizeof(ukey), "th:user:%s:calls", uid);
	cache_reply_free(cache_cmd(3, srem, NULL));
	cache_reply_free(cache_cmd(3, urem, NULL));
	if (ended)
		cache_reply_free(cache_cmd(2, del, NULL));
}

/* "{1,2,3}" from a column of ids, into buf. */
static void id_array(const struct db_res *r, char *buf, size_t size)
{
	size_t n = 0;

	n += (size_t)snprintf(buf + n, size - n, "{");
	for (int i = 0; i < db_res_rows(r) && n + 24 < size; i++)
		n += (size_t)snprintf(buf + n, size - n, "%s%s", i ? "," : "", db_res_get(r, i, 0));
	snprintf(buf + n, size - n, "}");
}

int calls_user_offline(int64_t user_id)
{
	char uid[24], ids[4096];
	struct db_res *left = NULL, *ended = NULL, *ev;
	int i, j;

	snprintf(uid, sizeof(uid), "%lld", (long long)user_id);
	if (db_begin() < 0)
		return -1;
	left = db_exec(DB_PRIMARY,
		       "DELETE FROM call_participants cp USING calls c "
		       "WHERE cp.user_id = $1 AND cp.call_id = c.id AND c.ended_at IS NULL "
		       "RETURNING cp.call_id::text",
		       1, (const char *const[]){uid});
	if (!left)
		goto fail;
	if (db_res_rows(left) == 0) {
		db_res_free(left);
		db_rollback();
		return 0;
	}
	id_array(left, ids, sizeof(ids));
	/* the events a REST leave writes, in this transaction */
	ev = db_exec(DB_PRIMARY,
		     "INSERT INTO event_outbox (payload) "
		     "SELECT jsonb_build_object('type', 'call_left', 'community_id', "
		     "ch.community_id, "
		     "  'channel_id', c.channel_id, 'call_id', c.id, 'user_id', $2::bigint) "
		     "FROM calls c JOIN channels ch ON ch.id = c.channel_id WHERE c.id = "
		     "ANY($1::bigint[])",
		     2, (const char *const[]){ids, uid});
	if (!ev)
		goto fail;
	db_res_free(ev);
	/* a statement of its own, so it sees the deletes above */
	ended = db_exec(DB_PRIMARY,
			"WITH e AS (UPDATE calls c SET ended_at = now() "
			"  WHERE c.id = ANY($1::bigint[]) AND c.ended_at IS NULL "
			"  AND NOT EXISTS (SELECT 1 FROM call_participants p WHERE p.call_id = "
			"c.id) "
			"  RETURNING c.id, c.channel_id) "
			"INSERT INTO event_outbox (payload) "
			"SELECT jsonb_build_object('type', 'call_ended', 'community_id', "
			"ch.community_id, "
			"  'channel_id', e.channel_id, 'call_id', e.id, 'user_id', $2::bigint) "
			"FROM e JOIN channels ch ON ch.id = e.channel_id RETURNING "
			"payload->>'call_id'",
			2, (const char *const[]){ids, uid});
	if (!ended || db_commit() < 0)
		goto fail;
	for (i = 0; i < db_res_rows(left); i++) {
		const char *call = db_res_get(left, i, 0);
		int is_ended = 0;

		for (j = 0; j < db_res_rows(ended); j++)
			is_ended |= strcmp(db_res_get(ended, j, 0), call) == 0;
		redis_leave(uid, call, is_ended);
		log_info("bridge: user %s went offline: left call %s%s", uid, call,
			 is_ended ? ", which ended" : "");
	}
	db_res_free(left);
	db_res_free(ended);
	return 1;
fail:
	db_res_free(left);
	db_res_free(ended);
	db_rollback();
	log_error("bridge: leaving the calls of user %s failed: %s", uid, db_last_error());
	return -1;
}

int calls_users_offline(const int64_t *ids, size_t n)
{
	size_t size = IDS_ARRAY_SIZE(n);
	char *arr = malloc(size);
	struct db_res *r;
	int changed = 0;

	if (!arr) {
		log_error("bridge: out of memory for %zu offline users", n);
		return -1;
	}
	ids_array(arr, size, ids, n);
	/* one round trip for all of them, no transaction: the common case (a
	 * reconnect storm: thousands offline, none in a call) stops here.  A
	 * user who joins a call after this look and before their offline
	 * message is an ordering race the one-user path has as well. */
	r = db_exec(DB_PRIMARY,
		    "SELECT DISTINCT cp.user_id::text FROM call_participants cp "
		    "JOIN calls c ON c.id = cp.call_id AND c.ended_at IS NULL "
		    "WHERE cp.user_id = ANY($1::bigint[])",
		    1, (const char *const[]){arr});
	free(arr);
	if (!r) {
		log_error("bridge: looking up the calls of %zu offline users failed: %s", n,
			  db_last_error());
		return -1;
	}
	for (int i = 0; i < db_res_rows(r); i++)
		if (calls_user_offline(strtoll(db_res_get(r, i, 0), NULL, 10)) > 0)
			changed = 1;
	db_res_free(r);
	return changed;
}
