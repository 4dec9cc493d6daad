/* callexit: a member who leaves, is removed or is banned leaves the
 * community's ongoing calls at once (issue 17: a ban reaches calls).
 *
 * In the transaction of the membership change: the user's ongoing calls in
 * the community's channels are locked (the row lock the realtime app's
 * join and leave take, so "the last one out ends the call" is decided
 * once), the user's participant rows go, call_left is queued for each call
 * and call_ended for each that is left empty: the same events as a REST
 * leave (docs/events.md), so the other participants' clients close the
 * peer connection as they already do; call_left carries user_id, so it
 * reaches the removed user's inbox too.
 *
 * After the commit the Redis sets the broker plugin's signal ACL reads are
 * updated (th:call:<id>:participants, th:user:<uid>:calls).  The plugin asks
 * Redis on every signal publish and delivery (no positive cache for call
 * membership), so from then on signal messages from and to the user are
 * refused.  A failed Redis write is logged; the realtime app's join
 * re-checks the membership under a lock, so the user cannot come back.
 *
 * A deleted community takes its calls with it (ON DELETE CASCADE):
 * callexit_community() reads their participants before the delete, and
 * callexit_mirror_community() removes the Redis sets after the commit, so
 * nobody signals in a call that no longer exists. */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "community.h"
#include "db.h"
#include "mirror.h"
#include "events.h"
#include "log.h"
#include "reply.h"

/* {type, community_id, channel_id, call_id, user_id} queued; -1 replied */
static int emit(struct http_req *req, const char *type, int64_t cid, const char *channel,
		const char *call, int64_t uid)
{
	struct json_object *ev = json_object_new_object();

	if (!ev) {
		http_reply_error(req, TH_EINTERNAL, "out of memory", NULL);
		return -1;
	}
	json_object_object_add(ev, "type", json_object_new_string(type));
	json_object_object_add(ev, "community_id", json_object_new_int64(cid));
	json_object_object_add(ev, "channel_id", json_object_new_int64(strtoll(channel, NULL, 10)));
	json_object_object_add(ev, "call_id", json_object_new_int64(strtoll(call, NULL, 10)));
	json_object_object_add(ev, "user_id", json_object_new_int64(uid));
	return events_emit_json(req, ev);
}

/* "{1,2,3}" of column 0 of r, in the request's arena; NULL when out of
 * memory. */
static char *id_array(struct http_req *req, const struct db_res *r)
{
	size_t size = (size_t)db_res_rows(r) * 22 + 3, n = 0;
	char *buf = arena_alloc(req->arena, size);

	if (!buf)
		return NULL;
	buf[n++] = '{';
	for (int i = 0; i < db_res_rows(r); i++)
		n += (size_t)snprintf(buf + n, size - n, "%s%s", i ? "," : "", db_res_get(r, i, 0));
	snprintf(buf + n, size - n, "}");
	return buf;
}

int callexit_leave(struct http_req *req, int64_t cid, int64_t uid, struct callexit *out)
{
	char c[24], u[24], *ids;
	struct db_res *r;
	int i;

	memset(out, 0, sizeof(*out));
	out->user_id = uid;
	ids_text(c, cid);
	ids_text(u, uid);
	/* calls in id order: two transactions lock them in the same order */
	out->left = db_exec_or_reply(req, DB_PRIMARY,
				     "SELECT c.id::text, c.channel_id::text FROM calls c "
				     "JOIN channels ch ON ch.id = c.channel_id "
				     "JOIN call_participants cp ON cp.call_id = c.id "
				     "WHERE ch.community_id = $1 AND cp.user_id = $2 "
				     "AND c.ended_at IS NULL ORDER BY c.id FOR UPDATE OF c",
				     2, (const char *const[]){c, u});
	if (!out->left)
		return -1;
	if (db_res_rows(out->left) == 0)
		return 0;
	r = db_exec_or_reply(req, DB_PRIMARY,
			     "DELETE FROM call_participants cp USING calls c, channels ch "
			     "WHERE cp.user_id = $2 AND cp.call_id = c.id AND c.ended_at IS NULL "
			     "AND ch.id = c.channel_id AND ch.community_id = $1",
			     2, (const char *const[]){c, u});
	if (!r)
		return -1;
	for (i = 0; i < db_res_rows(out->left); i++)
		if (emit(req, "call_left", cid, db_res_get(out->left, i, 1),
			 db_res_get(out->left, i, 0), uid) < 0)
			return -1;
	ids = id_array(req, out->left);
	if (!ids) {
		http_reply_error(req, TH_EINTERNAL, "out of memory", NULL);
		return -1;
	}
	/* a statement of its own, so it sees the delete above */
	out->ended = db_exec_or_reply(req, DB_PRIMARY,
				      "UPDATE calls c SET ended_at = now() "
				      "WHERE c.id = ANY($1::bigint[]) AND c.ended_at IS NULL "
				      "AND NOT EXISTS (SELECT 1 FROM call_participants p "
				      "                WHERE p.call_id = c.id) "
				      "RETURNING c.id::text, c.channel_id::text",
				      1, (const char *const[]){ids});
	if (!out->ended)
		return -1;
	for (i = 0; i < db_res_rows(out->ended); i++)
		if (emit(req, "call_ended", cid, db_res_get(out->ended, i, 1),
			 db_res_get(out->ended, i, 0), uid) < 0)
			return -1;
	return db_res_rows(out->left);
}

/* SREM / DEL of one Redis key; a failure is logged (best effort, like
 * lib/mirror.c: the change is committed). */
static void redis_cmd(struct http_req *req, const char *cmd, const char *key, const char *member)
{
	const char *argv[] = {cmd, key, member};
	struct cache_reply *r = cache_own(req, cache_cmd(member ? 3 : 2, argv, NULL));

	if (!r || cache_reply_type(r) == CACHE_ERROR)
		log_warn("callexit: redis %s %s failed: %s", cmd, key,
			 r ? cache_reply_str(r, NULL) : cache_last_error());
}

void callexit_mirror(struct http_req *req, const struct callexit *x)
{
	char key[64], u[24];
	int i, j;

	if (!x->left || x->whole)
		return;
	mirror_gen_bump(); /* a concurrent mirror rebuild starts over */
	ids_text(u, x->user_id);
	for (i = 0; i < db_res_rows(x->left); i++) {
		const char *call = db_res_get(x->left, i, 0);
		int ended = 0;

		for (j = 0; x->ended && j < db_res_rows(x->ended); j++)
			ended |= strcmp(db_res_get(x->ended, j, 0), call) == 0;
		snprintf(key, sizeof(key), "th:call:%s:participants", call);
		if (ended)
			redis_cmd(req, "DEL", key, NULL);
		else
			redis_cmd(req, "SREM", key, u);
		snprintf(key, sizeof(key), "th:user:%s:calls", u);
		redis_cmd(req, "SREM", key, call);
		log_info("audit: user %s left call %s (membership gone)%s", u, call,
			 ended ? ", which ended" : "");
	}
}

int callexit_community(struct http_req *req, int64_t cid, struct callexit *x)
{
	char c[24];

	memset(x, 0, sizeof(*x));
	ids_text(c, cid);
	x->left = db_exec_or_reply(req, DB_PRIMARY,
				   "SELECT cp.call_id::text, cp.user_id::text FROM "
				   "call_participants cp "
				   "JOIN calls ca ON ca.id = cp.call_id "
				   "JOIN channels ch ON ch.id = ca.channel_id "
				   "WHERE ch.community_id = $1 AND ca.ended_at IS NULL",
				   1, (const char *const[]){c});
	if (!x->left)
		return -1;
	x->whole = 1;
	return db_res_rows(x->left);
}

void callexit_mirror_community(struct http_req *req, const struct callexit *x)
{
	char key[64];

	if (!x->left || !x->whole)
		return;
	mirror_gen_bump();
	for (int i = 0; i < db_res_rows(x->left); i++) {
		const char *call = db_res_get(x->left, i, 0);

		snprintf(key, sizeof(key), "th:call:%s:participants", call);
		redis_cmd(req, "DEL", key, NULL);
		snprintf(key, sizeof(key), "th:user:%s:calls", db_res_get(x->left, i, 1));
		redis_cmd(req, "SREM", key, call);
	}
}
