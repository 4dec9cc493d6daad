/* access: a community's standing for the caller (the rules: lib/policy.c),
 * its JSON, and keyset pages of its rows. */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "community.h"
#include "db.h"
#include "jh.h"
#include "page.h"
#include "reply.h"

int community_load(struct http_req *req, int64_t id, struct community *c)
{
	if (policy_load(req, id, c) < 0)
		return -1;
	if (c->id == 0) {
		http_reply_error(req, TH_ENOTFOUND, "no such community", NULL);
		return -1;
	}
	return 0;
}

int community_access(struct http_req *req, int64_t id, enum role need, struct community *c)
{
	if (policy_load(req, id, c) < 0)
		return -1;
	return policy_check_or_reply(req, c, need, "community");
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
	json_object_object_add(o, "visibility",
			       json_object_new_string(db_res_get(r, row, col + 4)));
	json_object_object_add(o, "owner_id", user_json_int(db_res_get(r, row, col + 5)));
	json_object_object_add(o, "member_count", user_json_int(db_res_get(r, row, col + 6)));
	json_object_object_add(o, "created_at",
			       json_object_new_string(db_res_get(r, row, col + 7)));
	json_object_object_add(o, "my_role",
			       db_res_isnull(r, row, col + 8) ? NULL
							      : json_object_new_string(role));
	/* the chat rules (lib/modrule.h) */
	json_object_object_add(o, "slow_mode_seconds", user_json_int(db_res_get(r, row, col + 9)));
	json_object_object_add(o, "max_message_length",
			       user_json_int(db_res_get(r, row, col + 10)));
	json_object_object_add(o, "links_allowed",
			       json_object_new_boolean(strcmp(db_res_get(r, row, col + 11), "t") ==
						       0));
	return o;
}

void community_page(struct http_req *req, enum role need, enum db_role db, const char *sql,
		    community_row_fn fn)
{
	struct community cm;
	struct page p;
	char c[24];
	struct db_res *r;

	if (community_access_param(req, "id", need, &cm) < 0 ||
	    page_parse_or_400(req, 1, 0, &p) < 0)
		return;
	{
		const char *params[] = {ids_text(c, cm.id), p.key_s[0], p.limit_s};

		r = db_exec_or_reply(req, db, sql, 3, params);
	}
	if (!r)
		return;
	page_reply(req, &p, r, 0, fn, &cm.id);
}
