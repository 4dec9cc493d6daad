/* search: GET /api/communities/:id/search?q= — posts ranked by full-text
 * relevance.
 *
 * q (1-200 chars, no control characters) goes to websearch_to_tsquery
 * ('simple', $q) as a parameter: it accepts any text (quotes, OR, -word,
 * stray operators like "&|!():*") without a syntax error, and no SQL is ever
 * built from it.  posts.search is a stored tsvector (title weight A, body B)
 * with a GIN index (posts_search_idx).
 *
 * Order: ts_rank desc, then id desc.  Keyset over (rank, id): page.h keys
 * are integers, so the rank is carried as round(rank * 1e9) — computed by
 * the same SQL expression for the ORDER BY and for the cursor comparison, so
 * a cursor names exactly one place in the order whatever the float
 * rounding.  Ranking needs every match of the community (the rank is not
 * indexable), so one page costs O(matches); statement_timeout bounds the
 * worst case.  Not cached: queries are too varied to hit. */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jh.h"
#include "page.h"
#include "posts.h"
#include "reply.h"

#define SEARCH_Q_MAX 200

/* The q parameter, or NULL with 400 (field q) replied. */
static const char *q_or_400(struct http_req *req)
{
	const char *q = http_query(req, "q");
	size_t len = q ? strlen(q) : 0;
	long n = q ? jh_utf8_len(q, len) : -1;

	if (!q || n < 1 || n > SEARCH_Q_MAX || jh_has_control(q, len, false)) {
		http_reply_error(req, TH_EVALIDATION,
				 "q must be 1 to 200 characters without control characters", "q");
		return NULL;
	}
	return q;
}

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

	if (community_access_param(req, "id", ROLE_NONE, &c) < 0 || !(q = q_or_400(req)) ||
	    page_parse_or_400(req, 2, INT64_MAX, &pg) < 0)
		return;
	params[0] = ids_text(cid, c.id);
	params[1] = q;
	params[2] = pg.key_s[0];
	params[3] = pg.key_s[1];
	params[4] = pg.limit_s;
	r = db_exec_or_reply(req, ryw_read_role(req->user_id),
			     "SELECT " POST_COLS ", s.rk FROM ("
			     "SELECT m.id, (ts_rank(m.search, q)::float8 * 1e9)::bigint AS rk "
			     "FROM posts m, websearch_to_tsquery('simple', $2) q "
			     "WHERE m.community_id = $1 AND m.search @@ q) s "
			     "JOIN posts p ON p.id = s.id JOIN users u ON u.id = p.author_id "
			     "WHERE (s.rk, s.id) < ($3::bigint, $4::bigint) "
			     "ORDER BY s.rk DESC, s.id DESC LIMIT $5",
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
