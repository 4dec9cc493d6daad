/* devices: the caller's sessions, one a signed-in device, and ending one
 * (API.md v1.1 "Account lifecycle").
 *
 *   GET /api/auth/sessions         {items: [{id, created_at, last_used_at,
 *                                   user_agent, ip, current}], next_cursor}
 *   DELETE /api/auth/sessions/:id  204; its sockets close within 5 s
 *
 * A live session is one not revoked with a refresh token not yet expired.
 * last_used_at is its last refresh (access tokens are checked without the
 * database); the list is most recently used first, keyset on that time and
 * the id.  Ending a session is the logout of that device: revoked in
 * PostgreSQL, then announced to every worker and edge (lib/revoke). */
#include <ctype.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "ids.h"
#include "jh.h"
#include "log.h"
#include "page.h"
#include "reply.h"
#include "revoke.h"
#include "user.h"

const char *devices_user_agent(const struct http_req *req, char *out, size_t size)
{
	const char *ua = http_header(req, "User-Agent");
	size_t n = 0;

	/* printable ASCII only: what a list shows and a log line holds */
	for (; ua && *ua && n + 1 < size && n < DEVICES_UA_MAX; ua++)
		if (*ua >= 0x20 && *ua < 0x7f)
			out[n++] = *ua;
	out[n] = '\0';
	return out;
}

static struct json_object *device_json(const struct db_res *r, int row, void *ctx)
{
	const int64_t *current = ctx;
	struct json_object *o = json_object_new_object();
	int64_t id = strtoll(db_res_get(r, row, 0), NULL, 10);

	json_object_object_add(o, "id", json_object_new_int64(id));
	json_object_object_add(o, "created_at", json_object_new_string(db_res_get(r, row, 1)));
	json_object_object_add(o, "last_used_at", json_object_new_string(db_res_get(r, row, 2)));
	json_object_object_add(o, "user_agent", json_object_new_string(db_res_get(r, row, 3)));
	json_object_object_add(o, "ip",
			       db_res_isnull(r, row, 4)
				       ? NULL
				       : json_object_new_string(db_res_get(r, row, 4)));
	json_object_object_add(o, "current", json_object_new_boolean(id == *current));
	return o;
}

void sessions_list_handler(struct http_req *req)
{
	/* the cursor: last use (microseconds), then the id */
	static const int key_cols[] = {5, 0};
	char uid[24];
	struct page pg;
	struct db_res *r;

	if (page_parse_or_400(req, 2, INT64_MAX, &pg) < 0)
		return;
	{
		const char *params[] = {ids_text(uid, req->user_id), pg.key_s[0], pg.key_s[1],
					pg.limit_s};

		r = db_exec_or_reply(req, DB_PRIMARY,
				     "SELECT s.id, " TH_TIME_SQL("s.created_at") ", " TH_TIME_SQL(
					     "s.last_refreshed_at") ", s.user_agent, "
								    "s.client_addr, "
								    "k.used FROM sessions s, "
								    "LATERAL (SELECT "
								    "(extract(epoch FROM "
								    "s.last_refreshed_at) * "
								    "1000000)::bigint "
								    "AS used) k "
								    "WHERE s.user_id = $1 AND "
								    "s.revoked_at IS "
								    "NULL AND EXISTS (SELECT 1 "
								    "FROM "
								    "refresh_tokens t WHERE "
								    "t.session_id = s.id "
								    "AND t.expires_at > now()) "
								    "AND (k.used, s.id) < "
								    "($2::bigint, "
								    "$3::bigint) ORDER BY k.used "
								    "DESC, s.id DESC "
								    "LIMIT $4",
				     4, params);
	}
	if (!r)
		return;
	page_reply_keys(req, &pg, r, 2, key_cols, device_json, &req->session_id);
}

void sessions_delete_handler(struct http_req *req)
{
	char sid[24], uid[24];
	int64_t id;
	struct db_res *r;

	if (jh_id_or_404(req, http_param(req, "id"), &id) < 0)
		return;
	{
		const char *params[] = {ids_text(sid, id), ids_text(uid, req->user_id)};

		/* another user's session is as unknown as a missing one */
		r = db_exec_or_reply(req, DB_PRIMARY,
				     "UPDATE sessions SET revoked_at = now(), revoked_reason = "
				     "'ended' WHERE id = $1 AND user_id = $2 AND revoked_at IS "
				     "NULL RETURNING id",
				     2, params);
	}
	if (!r || db_one_row_changed_or_404(req, r, "no such session") < 0)
		return;
	revoke_publish(id);
	log_info("audit: session %s of user %s ended by its user", sid, uid);
	http_reply_empty(req, 204);
}
