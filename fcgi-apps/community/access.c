/* access: roles, and the one place that decides who may see or act on a
 * community. */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "community.h"
#include "db.h"
#include "jh.h"
#include "page.h"

static const char *const role_names[] = {NULL, "member", "moderator", "admin", "owner"};

const char *role_name(enum role r)
{
	return (r > ROLE_NONE && r <= ROLE_OWNER) ? role_names[r] : NULL;
}

enum role role_parse(const char *s)
{
	for (int i = ROLE_MEMBER; i <= ROLE_OWNER; i++)
		if (s && strcmp(s, role_names[i]) == 0)
			return (enum role)i;
	return ROLE_NONE;
}

const char *id_text(char buf[24], int64_t id)
{
	/* by hand, not snprintf: a cached feed hit formats three of these */
	char tmp[24], *p = tmp + sizeof(tmp);
	uint64_t u = id < 0 ? 0 - (uint64_t)id : (uint64_t)id;

	*--p = '\0';
	do {
		*--p = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (id < 0)
		*--p = '-';
	memcpy(buf, p, (size_t)(tmp + sizeof(tmp) - p));
	return buf;
}

int community_load(struct http_req *req, int64_t id, struct community *c)
{
	char cid[24], uid[24];
	const char *params[] = {id_text(cid, id), id_text(uid, req->user_id)};
	struct db_res *r;

	memset(c, 0, sizeof(*c));
	/* the primary: a caller must see their own join or role change at once */
	r = db_exec_or_reply(req, DB_PRIMARY,
			     "SELECT c.visibility, c.owner_id, m.role, b.user_id IS NOT NULL "
			     "FROM communities c "
			     "LEFT JOIN memberships m ON m.community_id = c.id AND m.user_id = $2 "
			     "LEFT JOIN bans b ON b.community_id = c.id AND b.user_id = $2 "
			     "WHERE c.id = $1",
			     2, params);
	if (!r)
		return -1;
	if (db_res_rows(r) != 1) {
		db_res_free(r);
		http_reply_error(req, TH_ENOTFOUND, "no such community", NULL);
		return -1;
	}
	c->id = id;
	c->is_public = strcmp(db_res_get(r, 0, 0), "public") == 0;
	c->owner_id = strtoll(db_res_get(r, 0, 1), NULL, 10);
	c->my_role = role_parse(db_res_get(r, 0, 2));
	c->banned = strcmp(db_res_get(r, 0, 3), "t") == 0;
	db_res_free(r);
	return 0;
}

int community_readable(const struct community *c)
{
	return c->is_public || c->my_role != ROLE_NONE;
}

int community_access(struct http_req *req, int64_t id, enum role need, struct community *c)
{
	if (community_load(req, id, c) < 0)
		return -1;
	if (!community_readable(c)) {
		http_reply_error(req, TH_ENOTFOUND, "no such community", NULL);
		return -1;
	}
	if (need == ROLE_NONE)
		return 0;
	if (req->user_id == 0) {
		http_reply_error(req, TH_EUNAUTHORIZED, "sign in first", NULL);
		http_set_header(req, "WWW-Authenticate", "Bearer");
		return -1;
	}
	if (c->banned) {
		http_reply_error(req, TH_EBANNED, "you are banned from this community", NULL);
		return -1;
	}
	if (c->my_role < need) {
		http_reply_error(req, TH_EFORBIDDEN,
				 need == ROLE_MEMBER ? "join the community first"
						     : "your role does not allow this", NULL);
		return -1;
	}
	return 0;
}

int community_access_param(struct http_req *req, const char *param, enum role need,
			   struct community *c)
{
	int64_t id;

	if (jh_id_or_404(req, http_param(req, param), &id) < 0)
		return -1;
	return community_access(req, id, need, c);
}

struct json_object *community_json(const struct db_res *r, int row, int col)
{
	struct json_object *o = json_object_new_object();
	const char *role = db_res_get(r, row, col + 8);

	json_object_object_add(o, "id", user_json_int(db_res_get(r, row, col)));
	json_object_object_add(o, "slug", json_object_new_string(db_res_get(r, row, col + 1)));
	json_object_object_add(o, "name", json_object_new_string(db_res_get(r, row, col + 2)));
	json_object_object_add(o, "description",
			       json_object_new_string(db_res_get(r, row, col + 3)));
	json_object_object_add(o, "visibility", json_object_new_string(db_res_get(r, row, col + 4)));
	json_object_object_add(o, "owner_id", user_json_int(db_res_get(r, row, col + 5)));
	json_object_object_add(o, "member_count", user_json_int(db_res_get(r, row, col + 6)));
	json_object_object_add(o, "created_at", json_object_new_string(db_res_get(r, row, col + 7)));
	json_object_object_add(o, "my_role", db_res_isnull(r, row, col + 8)
						     ? NULL : json_object_new_string(role));
	return o;
}

void community_page(struct http_req *req, enum role need, enum db_role db, const char *sql,
		    community_row_fn fn)
{
	struct community cm;
	struct page p;
	char c[24];
	struct db_res *r;

	if (community_access_param(req, "id", need, &cm) < 0 || page_parse_or_400(req, 1, 0, &p) < 0)
		return;
	{
		const char *params[] = {id_text(c, cm.id), p.key_s[0], p.limit_s};

		r = db_exec_or_reply(req, db, sql, 3, params);
	}
	if (!r)
		return;
	page_reply(req, &p, r, 0, fn, &cm.id);
	db_res_free(r);
}
