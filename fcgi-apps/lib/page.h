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
#define PAGE_KEYS_MAX 3 /* keys a cursor holds (e.g. rank, channel, seq) */

struct page {
	int limit;
	bool has_cursor;
	int64_t key[PAGE_KEYS_MAX];    /* the cursor's keys (the first nkeys used) */
	char limit_s[12];              /* limit + 1 as text, for SQL: fetch one more to know
				  * whether a next page exists */
	char key_s[PAGE_KEYS_MAX][24]; /* keys as text, for SQL parameters */
};

/* Reads ?limit and ?cursor.  nkeys: 1 to PAGE_KEYS_MAX.  A missing cursor starts at the
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

/* The next_cursor of a page of r's rows fetched with LIMIT p->limit + 1: the
 * key columns key_cols[0 .. nkeys) of the last item shown, in the arena, or
 * NULL when the extra row is missing (the last page). */
char *page_next_cursor(struct arena *a, const struct page *p, const struct db_res *r, int nkeys,
		       const int *key_cols);

/* Replies 200 with the page made of r's rows, fetched with LIMIT p->limit + 1:
 * at most p->limit items built by fn, and a next_cursor (column key_col of
 * the last item shown) only when the extra row shows there is more. */
void page_reply(struct http_req *req, const struct page *p, const struct db_res *r, int key_col,
		page_row_fn fn, void *ctx);
/* The same with a cursor of nkeys key columns (a ranked list: rank, then
 * what breaks its ties). */
void page_reply_keys(struct http_req *req, const struct page *p, const struct db_res *r, int nkeys,
		     const int *key_cols, page_row_fn fn, void *ctx);

#endif
