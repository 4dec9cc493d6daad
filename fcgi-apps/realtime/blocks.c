/* blocks: a user blocking another (API.md v1.1 "Direct messages and
 * blocking").  Nobody opens or writes a DM with someone who blocked them:
 * POST /api/dms refuses (dms.c), and in every DM the two share the blocked
 * one is "muted" (dm_member_state, db/migrations/0018_dms_reads.sql): the
 * channel routes refuse their writes (lib/policy.c) and the broker their
 * publishes (the mirror's th:dm:<channel>, updated here after the commit).
 * A block stays private: the blocked user is not told. */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "jh.h"
#include "userlimits.h"
#include "log.h"
#include "mirror.h"
#include "page.h"
#include "realtime.h"
#include "reply.h"

/* a user's block list is bounded like every list the server keeps */
#define BLOCKS_MAX 1000

void blocks_mirror_pair(int64_t uid, int64_t other)
{
	char a[24], b[24];
	const char *params[] = {ids_text(a, uid), ids_text(b, other)};
	struct db_res *r;

	r = db_exec(DB_PRIMARY,
		    "SELECT s.channel_id, s.muted FROM dm_members o JOIN dm_member_state s "
		    "ON s.channel_id = o.channel_id AND s.user_id = $1 WHERE o.user_id = $2",
		    2, params);
	if (!r) {
		log_warn("blocks: cannot read the DMs of users %lld and %lld for the mirror: %s",
			 (long long)uid, (long long)other, db_last_error());
		return;
	}
	for (int i = 0; i < db_res_rows(r); i++)
		mirror_dm_member(strtoll(db_res_get(r, i, 0), NULL, 10), uid,
				 strcmp(db_res_get(r, i, 1), "t") == 0);
	db_res_free(r);
}

/* The user of path parameter :id, not the caller, existing: 0, or -1 with
 * 404 (unknown) or 400 (oneself) replied. */
static int target_or_reply(struct http_req *req, int64_t *uid)
{
	char u[24];
	const char *params[1];
	struct db_res *r;

	if (jh_id_or_404(req, http_param(req, "id"), uid) < 0)
		return -1;
	if (*uid == req->user_id) {
		http_reply_error(req, TH_EVALIDATION, "you cannot block yourself", "id");
		return -1;
	}
	params[0] = ids_text(u, *uid);
	r = db_exec_or_reply(req, DB_PRIMARY, "SELECT 1 FROM users WHERE id = $1", 1, params);
	if (!r)
		return -1;
	if (db_res_rows(r) != 1) {
		http_reply_error(req, TH_ENOTFOUND, "no such user", NULL);
		return -1;
	}
	return 0;
}

/* PUT /api/users/:id/block: 204, also when blocked already. */
void blocks_put(struct http_req *req)
{
	int64_t uid;
	char me[24], u[24], max[24];
	struct db_res *r;

	if (target_or_reply(req, &uid) < 0 || limits_take_or_reply(req, LIMIT_BLOCK) < 0)
		return;
	{
		const char *params[] = {ids_text(me, req->user_id), ids_text(u, uid),
					ids_text(max, BLOCKS_MAX)};

		/* the count and the insert in one statement; two concurrent
		 * blocks of one user may pass the bound by one (harmless) */
		r = db_exec_or_reply(req, DB_PRIMARY,
				     "WITH n AS (SELECT count(*) AS n FROM blocks WHERE "
				     "blocker_id = $1), "
				     "ins AS (INSERT INTO blocks (blocker_id, blocked_id) "
				     "SELECT $1, $2 FROM n WHERE n.n < $3 "
				     "ON CONFLICT DO NOTHING RETURNING 1) "
				     "SELECT (SELECT count(*) FROM ins), EXISTS (SELECT 1 FROM "
				     "blocks "
				     "WHERE blocker_id = $1 AND blocked_id = $2)",
				     3, params);
	}
	if (!r)
		return;
	if (strcmp(db_res_get(r, 0, 0), "0") == 0 && strcmp(db_res_get(r, 0, 1), "t") != 0) {
		http_reply_error(req, TH_ECONFLICT, "your block list is full (1000 people)", NULL);
		return;
	}
	if (strcmp(db_res_get(r, 0, 0), "1") == 0) {
		log_info("audit: user %lld blocked user %lld", (long long)req->user_id,
			 (long long)uid);
		blocks_mirror_pair(uid, req->user_id);
	}
	http_reply_empty(req, 204);
}

/* DELETE /api/users/:id/block: 204, also when there was no block. */
void blocks_delete(struct http_req *req)
{
	int64_t uid;
	char me[24], u[24];
	struct db_res *r;

	/* a budget of its own (settings), not blocking's: whoever blocked many
	 * people in an hour can still take a block back */
	if (target_or_reply(req, &uid) < 0 || limits_take_or_reply(req, LIMIT_SETTING) < 0)
		return;
	{
		const char *params[] = {ids_text(me, req->user_id), ids_text(u, uid)};

		r = db_exec_or_reply(req, DB_PRIMARY,
				     "DELETE FROM blocks WHERE blocker_id = $1 AND blocked_id = $2",
				     2, params);
	}
	if (!r)
		return;
	if (db_res_affected(r) == 1) {
		log_info("audit: user %lld unblocked user %lld", (long long)req->user_id,
			 (long long)uid);
		blocks_mirror_pair(uid, req->user_id);
	}
	http_reply_empty(req, 204);
}

static struct json_object *user_row(const struct db_res *r, int row, void *ctx)
{
	(void)ctx;
	return user_json(r, row, 0);
}

/* GET /api/users/me/blocks[?cursor=][&limit=]: the users the caller
 * blocked, by id. */
void blocks_list(struct http_req *req)
{
	struct page pg;
	char me[24];
	struct db_res *r;

	if (page_parse_or_400(req, 1, 0, &pg) < 0)
		return;
	{
		const char *params[] = {ids_text(me, req->user_id), pg.key_s[0], pg.limit_s};

		r = db_exec_or_reply(req, DB_PRIMARY,
				     "SELECT " USER_COLS " FROM blocks b JOIN users u ON u.id = "
				     "b.blocked_id WHERE b.blocker_id = $1 AND b.blocked_id > $2 "
				     "ORDER BY b.blocked_id LIMIT $3",
				     3, params);
	}
	if (!r)
		return;
	page_reply(req, &pg, r, 0, user_row, NULL);
}
