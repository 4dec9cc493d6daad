/* page: cursor encoding is "k1", "k1.k2" or "k1.k2.k3" in unpadded
 * base64url. */
#include "page.h"

#include <json-c/json.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "db.h"

char *page_cursor(struct arena *a, int nkeys, const int64_t *keys)
{
	char plain[PAGE_KEYS_MAX * 21], *out;
	size_t size, n = 0;

	for (int i = 0; i < nkeys && i < PAGE_KEYS_MAX; i++)
		n += (size_t)snprintf(plain + n, sizeof(plain) - n, "%s%lld", i ? "." : "",
				      (long long)keys[i]);
	size = sodium_base64_ENCODED_LEN(strlen(plain), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	out = arena_alloc(a, size);
	if (!out)
		return NULL;
	sodium_bin2base64(out, size, (const unsigned char *)plain, strlen(plain),
			  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	return out;
}

static int cursor_decode(const char *c, int nkeys, int64_t *keys)
{
	unsigned char plain[PAGE_KEYS_MAX * 21];
	size_t n;
	char buf[sizeof(plain) + 1], *k, *dot;
	long long v;

	if (strlen(c) > 96 || sodium_base642bin(plain, sizeof(plain), c, strlen(c), NULL, &n, NULL,
						sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0)
		return -1;
	memcpy(buf, plain, n);
	buf[n] = '\0';
	k = buf;
	for (int i = 0; i < nkeys; i++) {
		dot = strchr(k, '.');
		/* exactly nkeys keys: a dot after each but the last */
		if ((i < nkeys - 1) != (dot != NULL))
			return -1;
		if (dot)
			*dot = '\0';
		if (cfg_parse_int(k, INT64_MIN + 1, INT64_MAX, &v) < 0)
			return -1;
		keys[i] = v;
		if (dot)
			k = dot + 1;
	}
	return 0;
}

int page_parse_or_400(struct http_req *req, int nkeys, int64_t first_key, struct page *p)
{
	const char *l = http_query(req, "limit"), *c = http_query(req, "cursor");
	long long v;

	memset(p, 0, sizeof(*p));
	p->limit = PAGE_DEFAULT;
	if (l) {
		if (cfg_parse_int(l, 1, PAGE_MAX, &v) < 0) {
			http_reply_error(req, TH_EVALIDATION,
					 "limit must be an integer from 1 to 100", "limit");
			return -1;
		}
		p->limit = (int)v;
	}
	for (int i = 0; i < PAGE_KEYS_MAX; i++)
		p->key[i] = first_key;
	if (c && *c) {
		if (cursor_decode(c, nkeys, p->key) < 0) {
			http_reply_error(req, TH_EVALIDATION, "cursor is not valid", "cursor");
			return -1;
		}
		p->has_cursor = true;
	}
	snprintf(p->limit_s, sizeof(p->limit_s), "%d", p->limit + 1);
	for (int i = 0; i < PAGE_KEYS_MAX; i++)
		snprintf(p->key_s[i], sizeof(p->key_s[i]), "%lld", (long long)p->key[i]);
	return 0;
}

struct json_object *page_result(struct json_object *items, const char *next)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "items", items);
	json_object_object_add(o, "next_cursor", next ? json_object_new_string(next) : NULL);
	return o;
}

char *page_next_cursor(struct arena *a, const struct page *p, const struct db_res *r, int nkeys,
		       const int *key_cols)
{
	int64_t last[PAGE_KEYS_MAX];

	if (db_res_rows(r) <= p->limit || nkeys < 1 || nkeys > PAGE_KEYS_MAX)
		return NULL;
	for (int k = 0; k < nkeys; k++)
		last[k] = strtoll(db_res_get(r, p->limit - 1, key_cols[k]), NULL, 10);
	return page_cursor(a, nkeys, last);
}

void page_reply_keys(struct http_req *req, const struct page *p, const struct db_res *r, int nkeys,
		     const int *key_cols, page_row_fn fn, void *ctx)
{
	struct json_object *items = json_object_new_array();
	int n = db_res_rows(r);

	if (!items) {
		http_reply_error(req, TH_EINTERNAL, "out of memory", NULL);
		return;
	}
	for (int i = 0; i < n && i < p->limit; i++)
		json_object_array_add(items, fn(r, i, ctx));
	http_reply_json(req, 200,
			page_result(items, page_next_cursor(req->arena, p, r, nkeys, key_cols)));
}

void page_reply(struct http_req *req, const struct page *p, const struct db_res *r, int key_col,
		page_row_fn fn, void *ctx)
{
	page_reply_keys(req, p, r, 1, &key_col, fn, ctx);
}
