/* history: pages of an item's earlier versions. */
#include "history.h"

#include <json-c/json.h>
#include <stdint.h>

#include "page.h"
#include "reply.h"
#include "user.h"

/* Each item's rows number at most 100 (the migration's limit), so the
 * version number is counted over all of them; the page is then cut by id. */
static const char *const history_sql[] = {
	[HISTORY_POST] = "SELECT id, version, title, body, " TH_TIME_SQL(
		"written_at") ", " TH_TIME_SQL("replaced_at") " FROM (SELECT *, row_number() OVER "
							      "(ORDER BY id) AS version FROM "
							      "post_edits WHERE post_id = $1) v "
							      "WHERE id < $2 ORDER BY id DESC "
							      "LIMIT $3",
	[HISTORY_MESSAGE] =
		"SELECT id, version, NULL, body, " TH_TIME_SQL("written_at") ", " TH_TIME_SQL(
			"replaced_at") " FROM (SELECT *, row_number() OVER "
				       "(ORDER BY id) AS version FROM "
				       "message_edits WHERE message_id = $1) "
				       "v WHERE id < $2 ORDER BY id DESC "
				       "LIMIT $3",
};

static struct json_object *version_json(const struct db_res *r, int row, void *ctx)
{
	struct json_object *o = json_object_new_object();

	(void)ctx;
	json_object_object_add(o, "version", user_json_int(db_res_get(r, row, 1)));
	if (!db_res_isnull(r, row, 2))
		json_object_object_add(o, "title", json_object_new_string(db_res_get(r, row, 2)));
	json_object_object_add(o, "body", json_object_new_string(db_res_get(r, row, 3)));
	json_object_object_add(o, "written_at", json_object_new_string(db_res_get(r, row, 4)));
	json_object_object_add(o, "replaced_at", json_object_new_string(db_res_get(r, row, 5)));
	return o;
}

void history_reply(struct http_req *req, enum history_kind kind, const char *item_id)
{
	struct page p;
	struct db_res *r;

	if (page_parse_or_400(req, 1, INT64_MAX, &p) < 0)
		return;
	{
		const char *params[] = {item_id, p.key_s[0], p.limit_s};

		/* the primary: an author opening the history right after an edit
		 * sees it */
		r = db_exec_or_reply(req, DB_PRIMARY, history_sql[kind], 3, params);
	}
	if (!r)
		return;
	page_reply(req, &p, r, 0, version_json, NULL);
}
