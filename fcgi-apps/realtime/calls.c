/* calls: create, read, join, leave.
 *
 * A call belongs to a channel; members of the channel's community may start,
 * read and join it.  A channel has at most one ongoing call: POST /api/calls
 * on a channel whose call is ongoing joins the caller to that call and
 * answers 200 with it (201 only when a call was started).  Creation, join
 * and leave of one call are serialized by row locks (the channel's for
 * creation, the call's for join and leave), so "the last participant left,
 * the call ends" is decided once.
 *
 * Participants are mirrored to Redis after each commit, for the broker
 * plugin's signal ACL (realtime-bridge/plugin/acl.c) and a later disconnect
 * cleanup (docs/events.md):
 *   th:call:<call_id>:participants  SET <uid>       SADD join, SREM leave, DEL end
 *   th:user:<uid>:calls             SET <call_id>   SADD join, SREM leave
 * Best effort like lib/mirror.c: a failed write is logged and counted
 * (call_mirror_errors_total), never returned to the client, whose change is
 * committed.
 *
 * Events: call_started + call_invite (creation), call_joined, call_left,
 * call_ended.
 *
 * A member who leaves, is removed or is banned is taken out of the
 * community's ongoing calls by the community app in the same transaction
 * (community/callexit.c); create and join lock the caller's membership row
 * first, so they cannot slip a participant in behind it.  Starting or
 * joining a call counts against the caller's call budget (fcgi-apps/lib/userlimits:
 * TH_RL_CALL_MAX per TH_RL_CALL_WINDOW, 20 a minute): each start rings
 * every member's inbox. */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "db.h"
#include "events.h"
#include "jh.h"
#include "userlimits.h"
#include "log.h"
#include "metrics.h"
#include "mirror.h"
#include "realtime.h"
#include "reply.h"

struct call_ref {
	int64_t id;
	int64_t channel_id;
};

static int mirror_errors = -1;

int calls_init(void)
{
	mirror_errors = metrics_counter("call_mirror_errors_total");
	return 0;
}

/* ---- Redis mirror ---- */

static void mirror(struct http_req *req, const char *cmd, const char *key, const char *member)
{
	const char *argv[] = {cmd, key, member};
	struct cache_reply *r = cache_own(req, cache_cmd(member ? 3 : 2, argv, NULL));

	if (!r || cache_reply_type(r) == CACHE_ERROR) {
		log_warn("calls: redis %s %s failed: %s", cmd, key,
			 r ? cache_reply_str(r, NULL) : cache_last_error());
		if (mirror_errors >= 0)
			metrics_add(mirror_errors, 1);
	}
}

static void mirror_leave(struct http_req *req, int64_t call, int64_t uid, int ended);

/* After the join committed.  A leave, removal or ban committed in between
 * (community/callexit.c, or the bridge's offline cleanup) removes the
 * member from Redis after its own commit, which may come before our SADD:
 * so the row is read again after the SADD, and a participant gone by then
 * is removed again.  Either that read sees the row (the remover's SREM
 * comes after it, so after our SADD) or it does not (our SREM). */
static void mirror_join(struct http_req *req, int64_t call, int64_t uid)
{
	char key[64], c[24], u[24];
	const char *params[] = {ids_text(c, call), ids_text(u, uid)};
	struct db_res *r;

	mirror_gen_bump(); /* a concurrent rebuild starts over instead of undoing us */
	snprintf(key, sizeof(key), "th:call:%lld:participants", (long long)call);
	mirror(req, "SADD", key, u);
	snprintf(key, sizeof(key), "th:user:%lld:calls", (long long)uid);
	mirror(req, "SADD", key, c);
	r = db_own(req,
		   db_exec(DB_PRIMARY,
			   "SELECT 1 FROM call_participants WHERE call_id = $1 AND user_id = $2", 2,
			   params));
	if (r && db_res_rows(r) == 0) {
		log_info("calls: user %s left call %s while joining; mirror undone", u, c);
		mirror_leave(req, call, uid, 0);
	}
}

static void mirror_leave(struct http_req *req, int64_t call, int64_t uid, int ended)
{
	char key[64], c[24], u[24];

	mirror_gen_bump();
	snprintf(key, sizeof(key), "th:call:%lld:participants", (long long)call);
	if (ended)
		mirror(req, "DEL", key, NULL);
	else
		mirror(req, "SREM", key, ids_text(u, uid));
	snprintf(key, sizeof(key), "th:user:%lld:calls", (long long)uid);
	mirror(req, "SREM", key, ids_text(c, call));
}

/* ---- helpers ---- */

/* {type, community_id, channel_id, call_id, <who_key>: who} queued in the
 * current transaction. */
static int emit(struct http_req *req, const char *type, const struct rt_channel *ch, int64_t call,
		const char *who_key, int64_t who)
{
	struct json_object *ev = json_object_new_object();

	if (!ev) {
		http_reply_error(req, TH_EINTERNAL, "out of memory", NULL);
		return -1;
	}
	json_object_object_add(ev, "type", json_object_new_string(type));
	json_object_object_add(ev, "community_id", json_object_new_int64(ch->cm.id));
	json_object_object_add(ev, "channel_id", json_object_new_int64(ch->id));
	json_object_object_add(ev, "call_id", json_object_new_int64(call));
	json_object_object_add(ev, who_key, json_object_new_int64(who));
	return events_emit_json(req, ev);
}

/* Replies status with call id: {id, channel_id, community_id, created_by,
 * participants: [user], ice_servers, created_at, ended_at}. */
static void call_reply(struct http_req *req, int status, int64_t id, const struct rt_channel *ch)
{
	char cs[24];
	const char *params[] = {ids_text(cs, id)};
	struct db_res *r, *p;
	struct json_object *o, *parts, *ice;

	r = db_exec_or_reply(req, DB_PRIMARY,
			     "SELECT id, channel_id, created_by, " TH_TIME_SQL(
				     "created_at") ", " TH_TIME_SQL("ended_at") " FROM calls WHERE "
										"id = $1",
			     1, params);
	if (!r)
		return;
	if (db_res_rows(r) != 1) {
		http_reply_error(req, TH_ENOTFOUND, "no such call", NULL);
		return;
	}
	p = db_exec_or_reply(req, DB_PRIMARY,
			     "SELECT " USER_COLS " FROM call_participants cp "
			     "JOIN users u ON u.id = cp.user_id WHERE cp.call_id = $1 "
			     "ORDER BY cp.joined_at, cp.user_id",
			     1, params);
	if (!p) {
		return;
	}
	o = jh_object(req);
	parts = jh_array(req);
	ice = turn_ice_servers(req);
	if (!o || !parts || !ice) {
		http_reply_error(req, TH_EINTERNAL, "out of memory", NULL);
		return;
	}
	for (int i = 0; i < db_res_rows(p); i++)
		json_object_array_add(parts, user_json(p, i, 0));
	json_object_object_add(o, "id", user_json_int(db_res_get(r, 0, 0)));
	json_object_object_add(o, "channel_id", user_json_int(db_res_get(r, 0, 1)));
	json_object_object_add(o, "community_id", json_object_new_int64(ch->cm.id));
	json_object_object_add(o, "created_by", user_json_int(db_res_get(r, 0, 2)));
	json_object_object_add(o, "participants", json_object_get(parts));
	json_object_object_add(o, "ice_servers", json_object_get(ice));
	json_object_object_add(o, "created_at", json_object_new_string(db_res_get(r, 0, 3)));
	json_object_object_add(o, "ended_at",
			       db_res_isnull(r, 0, 4)
				       ? NULL
				       : json_object_new_string(db_res_get(r, 0, 4)));
	http_reply_json(req, status, json_object_get(o));
}

/* Loads the call of path parameter :id and its channel's standing (no rule
 * applied yet).  404 replied for a malformed or unknown id. */
static int call_load(struct http_req *req, struct call_ref *c, struct rt_channel *ch)
{
	char cs[24];
	const char *params[1];
	struct db_res *r;

	memset(c, 0, sizeof(*c));
	if (jh_id_or_404(req, http_param(req, "id"), &c->id) < 0)
		return -1;
	params[0] = ids_text(cs, c->id);
	r = db_exec_or_reply(req, DB_PRIMARY, "SELECT channel_id FROM calls WHERE id = $1", 1,
			     params);
	if (!r)
		return -1;
	if (db_res_rows(r) != 1) {
		http_reply_error(req, TH_ENOTFOUND, "no such call", NULL);
		return -1;
	}
	c->channel_id = strtoll(db_res_get(r, 0, 0), NULL, 10);
	if (channel_load(req, c->channel_id, ch) < 0)
		return -1;
	return 0;
}

/* Locks the caller's membership row (FOR SHARE) in the current transaction,
 * before any call or channel row: a leave, removal or ban deletes that row
 * and then takes the user out of the community's calls (community app,
 * callexit.c), so a join racing with it either commits first (and is
 * undone by it) or waits and finds no membership.  -1 when replied (403
 * when the membership is gone since channel_access). */
static int membership_lock(struct http_req *req, const struct rt_channel *ch)
{
	char c[24], u[24];
	const char *params[] = {ids_text(c, ch->cm.id), ids_text(u, req->user_id)};
	struct db_res *r;
	int n;

	r = db_exec_or_reply(req, DB_PRIMARY,
			     "SELECT 1 FROM memberships WHERE community_id = $1 AND user_id = $2 "
			     "FOR SHARE",
			     2, params);
	if (!r)
		return -1;
	n = db_res_rows(r);
	if (n != 1) {
		http_reply_error(req, TH_EFORBIDDEN, "you are not a member of this community",
				 NULL);
		return -1;
	}
	return 0;
}

/* Adds uid to call (in the current transaction); 1 when added, 0 when
 * already in it, -1 on error (replied). */
static int participant_add(struct http_req *req, int64_t call, int64_t uid)
{
	char cs[24], us[24];
	const char *params[] = {ids_text(cs, call), ids_text(us, uid)};
	struct db_res *r;
	int n;

	r = db_exec_or_reply(req, DB_PRIMARY,
			     "INSERT INTO call_participants (call_id, user_id) VALUES ($1, $2) "
			     "ON CONFLICT DO NOTHING",
			     2, params);
	if (!r)
		return -1;
	n = db_res_affected(r) == 1;
	return n;
}

/* Joins the caller to the ongoing call (locked by the caller) and commits:
 * call_joined when they were not in it yet.  -1 when replied. */
static int join_commit(struct http_req *req, const struct rt_channel *ch, int64_t call)
{
	int added = participant_add(req, call, req->user_id);

	if (added < 0 ||
	    (added && emit(req, "call_joined", ch, call, "user_id", req->user_id) < 0) ||
	    db_commit_or_reply(req) < 0)
		return -1;
	mirror_join(req, call, req->user_id);
	if (added)
		log_info("audit: user %lld joined call %lld", (long long)req->user_id,
			 (long long)call);
	return 0;
}

/* ---- handlers ---- */

#define CALL_INVITE_MAX \
	1000 /* inboxes one invite reaches; the rest see the
			      * community's event topic */

/* call_invite to the inboxes of the channel's community members (not the
 * caller), so a ringing phone does not depend on which community a client
 * has open; capped, and every member also gets it on events/community. */
static int invite(struct http_req *req, const struct rt_channel *ch, int64_t call)
{
	char cid[24], uid[24], lim[12];
	const char *params[] = {cid, uid, lim};
	struct json_object *ev, *inbox;
	struct db_res *r;
	int i;

	snprintf(cid, sizeof(cid), "%lld", (long long)ch->cm.id);
	snprintf(uid, sizeof(uid), "%lld", (long long)req->user_id);
	snprintf(lim, sizeof(lim), "%d", CALL_INVITE_MAX);
	r = db_exec_or_reply(req, DB_PRIMARY,
			     "SELECT user_id FROM memberships WHERE community_id = $1 AND user_id "
			     "<> $2 "
			     "ORDER BY user_id LIMIT $3",
			     3, params);
	if (!r)
		return -1;
	ev = json_object_new_object();
	inbox = json_object_new_array();
	for (i = 0; i < db_res_rows(r); i++)
		json_object_array_add(inbox, json_object_new_int64(
						     strtoll(db_res_get(r, i, 0), NULL, 10)));
	json_object_object_add(ev, "type", json_object_new_string("call_invite"));
	json_object_object_add(ev, "community_id", json_object_new_int64(ch->cm.id));
	json_object_object_add(ev, "channel_id", json_object_new_int64(ch->id));
	json_object_object_add(ev, "call_id", json_object_new_int64(call));
	json_object_object_add(ev, "from", json_object_new_int64(req->user_id));
	json_object_object_add(ev, "inbox", inbox);
	return events_emit_json(req, ev);
}

/* POST /api/calls {channel_id} */
void calls_create(struct http_req *req)
{
	struct rt_channel ch;
	char chs[24], uid[24];
	struct db_res *r;
	int64_t chid, call;

	if (jh_int_or_400(req, req->json, "channel_id", 1, INT64_MAX, true, NULL, &chid) < 0 ||
	    channel_access(req, chid, ROLE_MEMBER, &ch) < 0)
		return;
	/* a call's participants are a community's members (membership_lock,
	 * callexit.c): a DM has none to lock */
	if (ch.cm.dm) {
		http_reply_error(req, TH_EVALIDATION, "calls are started in community channels",
				 "channel_id");
		return;
	}
	if (limits_take_or_reply(req, LIMIT_CALL) < 0)
		return;
	ids_text(chs, ch.id);
	ids_text(uid, req->user_id);
	if (db_begin_or_reply(req) < 0 || membership_lock(req, &ch) < 0)
		return;
	{
		const char *params[] = {chs};

		/* the channel's lock serializes call creation in it */
		r = db_exec_or_reply(req, DB_PRIMARY,
				     "SELECT (SELECT max(id) FROM calls "
				     "        WHERE channel_id = ch.id AND ended_at IS NULL) "
				     "FROM channels ch WHERE ch.id = $1 FOR UPDATE",
				     1, params);
	}
	if (!r)
		return;
	if (db_res_rows(r) != 1) {
		http_reply_error(req, TH_ENOTFOUND, "no such channel", NULL);
		return;
	}
	if (!db_res_isnull(r, 0, 0)) {
		/* ongoing: join it (call rows are locked by join/leave; take it too) */
		const char *params[1];
		char cs[24];

		call = strtoll(db_res_get(r, 0, 0), NULL, 10);
		params[0] = ids_text(cs, call);
		r = db_exec_or_reply(req, DB_PRIMARY,
				     "SELECT 1 FROM calls WHERE id = $1 AND ended_at IS NULL FOR "
				     "UPDATE",
				     1, params);
		if (!r)
			return;
		if (db_res_rows(r) != 1) { /* cannot happen under the channel lock */
			http_reply_error(req, TH_ECONFLICT, "the call has just ended; try again",
					 NULL);
			return;
		}
		if (join_commit(req, &ch, call) < 0)
			return;
		call_reply(req, 200, call, &ch);
		return;
	}
	{
		const char *params[] = {chs, uid};

		r = db_exec_or_reply(req, DB_PRIMARY,
				     "INSERT INTO calls (channel_id, created_by) VALUES ($1, $2) "
				     "RETURNING id",
				     2, params);
	}
	if (!r)
		return;
	call = strtoll(db_res_get(r, 0, 0), NULL, 10);
	if (participant_add(req, call, req->user_id) < 0 ||
	    emit(req, "call_started", &ch, call, "user_id", req->user_id) < 0 ||
	    invite(req, &ch, call) < 0 || db_commit_or_reply(req) < 0)
		return;
	mirror_join(req, call, req->user_id);
	log_info("audit: user %lld started call %lld in channel %lld", (long long)req->user_id,
		 (long long)call, (long long)ch.id);
	call_reply(req, 201, call, &ch);
}

/* GET /api/calls/:id: members of the channel's community. */
void calls_get(struct http_req *req)
{
	struct rt_channel ch;
	struct call_ref c;

	if (call_load(req, &c, &ch) < 0 || channel_check(req, &ch, ROLE_MEMBER, "call") < 0)
		return;
	call_reply(req, 200, c.id, &ch);
}

/* POST /api/calls/:id/join: members; 409 when the call has ended;
 * idempotent (a participant joining again changes nothing). */
void calls_join(struct http_req *req)
{
	struct rt_channel ch;
	struct call_ref c;
	char cs[24];
	const char *params[1];
	struct db_res *r;

	if (call_load(req, &c, &ch) < 0 || channel_check(req, &ch, ROLE_MEMBER, "call") < 0 ||
	    limits_take_or_reply(req, LIMIT_CALL) < 0)
		return;
	params[0] = ids_text(cs, c.id);
	if (db_begin_or_reply(req) < 0 || membership_lock(req, &ch) < 0)
		return;
	r = db_exec_or_reply(req, DB_PRIMARY,
			     "SELECT ended_at IS NOT NULL FROM calls WHERE id = $1 FOR UPDATE", 1,
			     params);
	if (!r)
		return;
	if (db_res_rows(r) != 1 || strcmp(db_res_get(r, 0, 0), "t") == 0) {
		int gone = db_res_rows(r) != 1;

		http_reply_error(req, gone ? TH_ENOTFOUND : TH_ECONFLICT,
				 gone ? "no such call" : "the call has ended", NULL);
		return;
	}
	if (join_commit(req, &ch, c.id) < 0)
		return;
	call_reply(req, 200, c.id, &ch);
}

/* POST /api/calls/:id/leave: 204.  A participant may always leave (also
 * after losing their membership); for anyone else it is a no-op, 204 to
 * those who may see the call.  The last one out ends the call. */
void calls_leave(struct http_req *req)
{
	struct rt_channel ch;
	struct call_ref c;
	char cs[24], us[24];
	struct db_res *r;
	int ended = 0;

	if (call_load(req, &c, &ch) < 0)
		return;
	ids_text(cs, c.id);
	ids_text(us, req->user_id);
	if (db_begin_or_reply(req) < 0)
		return;
	{
		const char *params[] = {cs};

		r = db_exec_or_reply(req, DB_PRIMARY,
				     "SELECT 1 FROM calls WHERE id = $1 FOR UPDATE", 1, params);
	}
	if (!r)
		return;
	{
		const char *params[] = {cs, us};

		r = db_exec_or_reply(req, DB_PRIMARY,
				     "DELETE FROM call_participants WHERE call_id = $1 AND user_id "
				     "= $2",
				     2, params);
	}
	if (!r)
		return;
	if (db_res_affected(r) != 1) {
		db_rollback();
		if (channel_check(req, &ch, ROLE_NONE, "call") < 0)
			return;
		http_reply_empty(req, 204);
		return;
	}
	if (emit(req, "call_left", &ch, c.id, "user_id", req->user_id) < 0)
		return;
	{
		const char *params[] = {cs};

		r = db_exec_or_reply(req, DB_PRIMARY,
				     "UPDATE calls SET ended_at = now() WHERE id = $1 AND ended_at "
				     "IS NULL "
				     "AND NOT EXISTS (SELECT 1 FROM call_participants WHERE "
				     "call_id = $1)",
				     1, params);
	}
	if (!r)
		return;
	ended = db_res_affected(r) == 1;
	if ((ended && emit(req, "call_ended", &ch, c.id, "user_id", req->user_id) < 0) ||
	    db_commit_or_reply(req) < 0)
		return;
	mirror_leave(req, c.id, req->user_id, ended);
	log_info("audit: user %lld left call %lld%s", (long long)req->user_id, (long long)c.id,
		 ended ? " (call ended)" : "");
	http_reply_empty(req, 204);
}
