/* fuzz_splice: the feed cache's reaction splice (fcgi-apps/community/
 * feedmine.c): a cached feed entry's shared JSON with one caller's
 * my_reactions copied into it, bytes never parsed.  The entry and the
 * caller's rows come from Redis, which any fill may have left half written.
 *
 * Input: a flags byte (bit 0: a signed-in caller, bit 1: the entry is a
 * checked worker copy), the ids line, NUL, the caller's rows, NUL, the
 * shared JSON.  The rows are handed over as the caller's cached entry for
 * exactly these ids, so no PostgreSQL read is needed (the stubs below
 * abort if one is tried).  Checks: feedmine_reply either replies 200 with
 * a body no longer than the JSON plus the rows, or declines (-1) without
 * replying; an entry feedmine_shape_ok() accepts, with ids that are
 * numbers, always splices for an anonymous caller. */
#include <string.h>

#include "feedmine.h"
#include "fuzz.h"

/* feedmine.c reaches these only when the cached rows are missing or stale:
 * never in this target */
void feedcache_store(struct arena *ar, const char *key, const char *a, size_t alen, const char *b,
		     size_t blen)
{
	(void)ar, (void)key, (void)a, (void)alen, (void)b, (void)blen;
	FZ_CHECK(!"feedcache_store called");
}

/* Comma-separated runs of digits, each non-empty. */
static int ids_plain(const char *s)
{
	if (!*s)
		return 1;
	for (;;) {
		size_t n = strspn(s, "0123456789");

		if (n == 0 || n > 18)
			return 0;
		s += n;
		if (!*s)
			return 1;
		if (*s++ != ',')
			return 0;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz f = {data, size};
	unsigned flags = fz_byte(&f);
	size_t idlen, rlen, jlen;
	char *ids = fz_str(&f, &idlen), *rows = fz_str(&f, &rlen), *json = fz_rest(&f, &jlen);
	char *mine;
	struct http_req req;
	struct arena a;
	int rc;

	fz_quiet();
	if (!feedmine_ids_ok(ids, idlen))
		goto out; /* feedcache.c checks the ids line first */
	arena_init(&a);
	mine = arena_printf(&a, "%s\n%s", ids, rows);
	FZ_CHECK(mine);

	memset(&req, 0, sizeof(req));
	req.arena = &a;
	req.user_id = flags & 1 ? 7 : 0;
	rc = feedmine_reply(&req, "th:mine:fuzz", ids, json, jlen, mine, idlen + 1 + rlen,
			    (flags & 2) != 0);
	if (rc == 0) {
		FZ_CHECK(req.resp.status == 200);
		FZ_CHECK(req.resp.body_len <= jlen + rlen);
	} else {
		FZ_CHECK(rc == -1 && req.resp.status == 0);
	}

	/* what the worker's copy check (feedlocal.c) accepts, an anonymous
	 * caller is served */
	if (ids_plain(ids) && !memchr(json, '\0', jlen)) {
		char *e = arena_printf(&a, "%s\n%s", ids, json);

		FZ_CHECK(e);
		if (feedmine_shape_ok(e, idlen + 1 + jlen)) {
			memset(&req, 0, sizeof(req));
			req.arena = &a;
			FZ_CHECK(feedmine_reply(&req, "", ids, json, jlen, NULL, 0, 0) == 0);
			FZ_CHECK(req.resp.status == 200 && req.resp.body_len == jlen);
		}
	}
	arena_free(&a);
out:
	free(ids);
	free(rows);
	free(json);
	return 0;
}
