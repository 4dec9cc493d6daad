/* fuzz_page: ?limit= and ?cursor= of every list route (fcgi-apps/lib/page).
 *
 * Input: a byte (nkeys 1..PAGE_KEYS_MAX), 24 bytes of keys, then the query
 * string.  Checks: an accepted limit is 1..100 and an accepted cursor
 * encodes back to a cursor that decodes to the same keys; a refusal is 400;
 * every cursor page_cursor() makes is accepted with its own keys. */
#include <string.h>

#include "fuzz.h"
#include "page.h"

static int parse(struct arena *a, const char *query, int nkeys, struct page *p, int *status)
{
	struct http_req req;
	int rc;

	memset(&req, 0, sizeof(req));
	req.arena = a;
	req.query = query;
	rc = page_parse_or_400(&req, nkeys, 0, p);
	*status = req.resp.status;
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz f = {data, size};
	int nkeys = fz_byte(&f) % PAGE_KEYS_MAX + 1, status, own = 1;
	int64_t keys[PAGE_KEYS_MAX] = {0};
	uint64_t u;
	struct page p, q;
	struct arena a;
	char *query, *c;
	size_t i;

	for (i = 0; i < PAGE_KEYS_MAX; i++) {
		u = 0;
		for (int j = 0; j < 8; j++)
			u = u << 8 | fz_byte(&f);
		memcpy(&keys[i], &u, sizeof(keys[i]));
	}
	query = fz_str(&f, NULL);
	arena_init(&a);

	if (parse(&a, query, nkeys, &p, &status) == 0) {
		FZ_CHECK(status == 0);
		FZ_CHECK(p.limit >= 1 && p.limit <= PAGE_MAX);
		if (p.has_cursor) {
			c = page_cursor(&a, nkeys, p.key);
			FZ_CHECK(c);
			FZ_CHECK(parse(&a, arena_printf(&a, "cursor=%s", c), nkeys, &q, &status) ==
				 0);
			FZ_CHECK(q.has_cursor);
			for (int k = 0; k < nkeys; k++)
				FZ_CHECK(q.key[k] == p.key[k]);
		}
	} else {
		FZ_CHECK(status == 400);
	}

	/* our own cursors always come back (INT64_MIN is no key: ids are > 0) */
	for (int k = 0; k < nkeys; k++)
		own &= keys[k] != INT64_MIN;
	if (own) {
		c = page_cursor(&a, nkeys, keys);
		FZ_CHECK(c);
		FZ_CHECK(parse(&a, arena_printf(&a, "limit=100&cursor=%s", c), nkeys, &q,
			       &status) == 0);
		FZ_CHECK(q.has_cursor && q.limit == 100);
		for (int k = 0; k < nkeys; k++)
			FZ_CHECK(q.key[k] == keys[k]);
	}
	arena_free(&a);
	free(query);
	return 0;
}
