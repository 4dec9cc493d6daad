/* page: keyset pagination helpers shared by every list route.
 *
 * API.md: `?limit=` (default 20, max 100) and `?cursor=` (opaque) ->
 * {"items": [...], "next_cursor": "..." | null}.  A cursor is the key of the
 * last item of the previous page (one or two integers), base64url-encoded so
 * clients treat it as opaque. */
#ifndef TH_PAGE_H
#define TH_PAGE_H

#include <stdbool.h>
#include <stdint.h>

#include "http.h"

#define PAGE_DEFAULT 20
#define PAGE_MAX 100

struct page {
	int limit;
	bool has_cursor;
	int64_t key[2];    /* the cursor's keys (key[1] unused for one-key lists) */
	char limit_s[12];  /* limit + 1 as text, for SQL: fetch one more to know
				  * whether a next page exists */
	char key_s[2][24]; /* keys as text, for SQL parameters */
};

/* Reads ?limit and ?cursor.  nkeys: 1 or 2.  A missing cursor starts at the
 * beginning (key_s hold the start values first_key given).  400
 * validation_failed naming the field otherwise; returns -1 then. */
int page_parse_or_400(struct http_req *req, int nkeys, int64_t first_key, struct page *p);

/* The opaque cursor for keys (nkeys of them), into the arena. */
char *page_cursor(struct arena *a, int nkeys, const int64_t *keys);

/* Builds {"items": items, "next_cursor": next or null} (items consumed). */
struct json_object *page_result(struct json_object *items, const char *next);

struct db_res;
/* Builds one item of a page from row `row` of r (a new object). */
typedef struct json_object *(*page_row_fn)(const struct db_res *r, int row, void *ctx);

/* Replies 200 with the page made of r's rows, fetched with LIMIT p->limit + 1:
 * at most p->limit items built by fn, and a next_cursor (column key_col of
 * the last item shown) only when the extra row shows there is more. */
void page_reply(struct http_req *req, const struct page *p, const struct db_res *r, int key_col,
		page_row_fn fn, void *ctx);

#endif
