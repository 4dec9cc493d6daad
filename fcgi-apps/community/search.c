/* search: GET /api/communities/:id/search?q= — posts ranked by full-text
 * relevance, by the rules of fcgi-apps/lib/textsearch.h (the message search of
 * the realtime app follows the same).
 *
 * posts.search is a stored tsvector (title weight A, body B) with a GIN
 * index (posts_search_idx).  Order: rank desc, then id desc (the cursor:
 * rank, id).  Not cached: queries are too varied to hit. */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "textsearch.h"
#include "userlimits.h"
#include "page.h"
#include "posts.h"
#include "reply.h"

void search_posts(struct http_req *req)
{
	struct community c;
	struct page pg;
	const char *q, *params[5];
	/* the cursor: the rank, then the id (ties) of the last post */
	static const int key_cols[] = {POST_NCOLS, 0};
	char cid[24], *ids_csv, *ids_pg;
	struct db_res *r;
	struct json_object *result;

	if (community_access_param(req, "id", ROLE_NONE, &c) < 0 || !(q = fts_q_or_400(req)) ||
	    page_parse_or_400(req, 2, INT64_MAX, &pg) < 0)
		return;
	/* a search costs O(matches): a budget per user, an anonymous caller's
	 * per address */
	if (limits_take_or_reply(req, LIMIT_SEARCH) < 0)
		return;
	params[0] = ids_text(cid, c.id);
	params[1] = q;
	params[2] = pg.key_s[0];
	params[3] = pg.key_s[1];
	params[4] = pg.limit_s;
	r = db_exec_or_reply(req, ryw_read_role(req->user_id),
			     "SELECT " POST_COLS ", s.rk FROM ("
			     "SELECT m.id, " FTS_RANK_SQL("m.search",
							  "q") " AS rk "
							       "FROM posts m, " FTS_QUERY_SQL(
								       "$2") " q "
									     "WHERE m.community_id "
									     "= $1 AND m.search @@ "
									     "q) s "
									     "JOIN posts p ON p.id "
									     "= s.id LEFT JOIN "
									     "users u "
									     "ON u.id = "
									     "p.author_id "
									     "WHERE (s.rk, s.id) < "
									     "($3::bigint, "
									     "$4::bigint) "
									     "ORDER BY s.rk DESC, "
									     "s.id DESC LIMIT $5",
			     5, params);
	if (!r)
		return;
	result = posts_page_or_500(req, r, &pg, 2, key_cols, &ids_csv);
	if (!result)
		return;
	ids_pg = arena_printf(req->arena, "{%s}", ids_csv);
	if (!ids_pg || posts_fill_mine(req, ids_pg, result) < 0) {
		if (!ids_pg)
			http_reply_error(req, TH_EINTERNAL, "out of memory", NULL);
		return;
	}
	http_reply_json(req, 200, json_object_get(result));
}
