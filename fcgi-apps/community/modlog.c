/* modlog: the record of moderator actions (API.md v1.1 "Moderation").
 *
 * Nothing here writes it: the database's triggers do, in the transaction of
 * each action (db/migrations/0033_moderation.sql), with the actor every
 * signed-in transaction names (db_begin_or_reply).  These routes read it,
 * newest first, keyset paged:
 *   GET /api/communities/:id/modlog  members of the community (403 for a
 *       signed-in non-member of a public one, 404 for a private one, as
 *       every route of lib/policy); moderator+ see each entry's note,
 *       members the same entries with note null;
 *   GET /api/admin/modlog  site admins: the site-wide entries (community
 *       null: suspensions, admin grants, DM message removals). */
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "community.h"
#include "jh.h"
#include "page.h"
#include "reply.h"

/* Column 1 is the entry's JSON (modlog_json()). */
static struct json_object *entry_row(const struct db_res *r, int row, void *ctx)
{
	const char *s = db_res_get(r, row, 1);

	(void)ctx;
	return jh_parse(s, strlen(s));
}

int modlog_is_admin(struct http_req *req)
{
	char u[24];
	const char *params[] = {ids_text(u, req->user_id)};
	struct db_res *r;

	r = db_exec_or_reply(req, DB_PRIMARY, "SELECT is_admin FROM users WHERE id = $1", 1,
			     params);
	if (!r)
		return -1;
	return db_res_rows(r) == 1 && strcmp(db_res_get(r, 0, 0), "t") == 0;
}

/* One page newest first of the entries of community cid (0: the site's). */
static void entries_reply(struct http_req *req, int64_t cid, int notes)
{
	struct page p;
	char c[24];
	struct db_res *r;

	if (page_parse_or_400(req, 1, INT64_MAX, &p) < 0)
		return;
	{
		const char *params[] = {cid ? ids_text(c, cid) : NULL, p.key_s[0], p.limit_s,
					notes ? "t" : "f"};

		/* two statements: each walks its own index (0030) */
		r = db_exec_or_reply(req, DB_READ,
				     cid ? "SELECT m.id, modlog_json(m, $4::boolean)::text FROM "
					   "modlog m "
					   "WHERE m.community_id = $1::bigint AND m.id < "
					   "$2::bigint "
					   "ORDER BY m.id DESC LIMIT $3::integer"
					 : "SELECT m.id, modlog_json(m, $4::boolean)::text FROM "
					   "modlog m "
					   "WHERE m.community_id IS NULL AND $1::bigint IS NULL "
					   "AND m.id < $2::bigint ORDER BY m.id DESC LIMIT "
					   "$3::integer",
				     4, params);
	}
	if (!r)
		return;
	page_reply(req, &p, r, 0, entry_row, NULL);
}

void modlog_list(struct http_req *req)
{
	struct community cm;

	if (community_access_param(req, "id", ROLE_MEMBER, &cm) < 0)
		return;
	entries_reply(req, cm.id, cm.my_role >= ROLE_MODERATOR);
}

int modlog_admin_or_403(struct http_req *req)
{
	int admin = modlog_is_admin(req);

	if (admin < 0)
		return -1;
	if (!admin) {
		http_reply_error(req, TH_EFORBIDDEN, "site admins only", NULL);
		return -1;
	}
	return 0;
}

void modlog_admin_list(struct http_req *req)
{
	if (modlog_admin_or_403(req) == 0)
		entries_reply(req, 0, 1);
}
