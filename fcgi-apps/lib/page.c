/* page: cursor encoding is "k1" or "k1.k2" in unpadded base64url. */
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
	char plain[48], *out;
	size_t size;

	if (nkeys == 2)
		snprintf(plain, sizeof(plain), "%lld.%lld", (long long)keys[0], (long long)keys[1]);
	else
		snprintf(plain, sizeof(plain), "%lld", (long long)keys[0]);
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
	unsigned char plain[48];
	size_t n;
	char *dot, buf[48];
	long long v;

	if (strlen(c) > 64 ||
	    sodium_base642bin(plain, sizeof(plain) - 1, c, strlen(c), NULL, &n, NULL,
			      sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0)
		return -1;
	memcpy(buf, plain, n);
	buf[n] = '\0';
	dot = strchr(buf, '.');
	if ((nkeys == 2) != (dot != NULL))
		return -1;
	if (dot)
		*dot = '\0';
	if (cfg_parse_int(buf, INT64_MIN + 1, INT64_MAX, &v) < 0)
		return -1;
	keys[0] = v;
	if (dot) {
		if (cfg_parse_int(dot + 1, INT64_MIN + 1, INT64_MAX, &v) < 0)
			return -1;
		keys[1] = v;
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
	p->key[0] = p->key[1] = first_key;
	if (c && *c) {
		if (cursor_decode(c, nkeys, p->key) < 0) {
			http_reply_error(req, TH_EVALIDATION, "cursor is not valid", "cursor");
			return -1;
		}
		p->has_cursor = true;
	}
	snprintf(p->limit_s, sizeof(p->limit_s), "%d", p->limit + 1);
	snprintf(p->key_s[0], sizeof(p->key_s[0]), "%lld", (long long)p->key[0]);
	snprintf(p->key_s[1], sizeof(p->key_s[1]), "%lld", (long long)p->key[1]);
	return 0;
}

struct json_object *page_result(struct json_object *items, const char *next)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "items", items);
	json_object_object_add(o, "next_cursor", next ? json_object_new_string(next) : NULL);
	return o;
}

void page_reply(struct http_req *req, const struct page *p, const struct db_res *r, int key_col,
		page_row_fn fn, void *ctx)
{
	struct json_object *items = json_object_new_array();
	const char *next = NULL;
	int i, n = db_res_rows(r);

	if (!items) {
		http_reply_error(req, TH_EINTERNAL, "out of memory", NULL);
		return;
	}
	for (i = 0; i < n && i < p->limit; i++)
		json_object_array_add(items, fn(r, i, ctx));
	if (n > p->limit) {
		int64_t last = strtoll(db_res_get(r, p->limit - 1, key_col), NULL, 10);

		next = page_cursor(req->arena, 1, &last);
	}
	http_reply_json(req, 200, page_result(items, next));
}
