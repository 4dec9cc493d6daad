/* fuzz_multipart: the streaming multipart/form-data parser of the media
 * app (fcgi-apps/media/multipart.c) and its boundary parameter.
 *
 * Input: the Content-Type value, NUL, four bytes seeding the chunk sizes,
 * then the body.  The body is parsed twice: whole, and in chunks of random
 * sizes (1 byte up to 4 KiB), as FastCGI delivers it.  Checks: both give
 * the same result, the same file bytes and the same filename; the file's
 * bytes never hold the delimiter and never outgrow the body.  The part's
 * filename then goes through media_clean_filename() and media_disposition()
 * as an upload's does: the stored name is whole UTF-8 characters (the
 * database refuses anything else) without the bytes that would end a
 * header parameter, and the Content-Disposition header quotes it safely. */
#include <string.h>

#include "fuzz.h"
#include "jh.h"
#include "media.h"

struct sink {
	char *buf;
	size_t len, cap;
	int fail_at; /* on_file fails on this call (0: never) */
	int calls;
};

static int on_file(void *ctx, const char *buf, size_t n)
{
	struct sink *s = ctx;

	FZ_CHECK(n > 0);
	if (++s->calls == s->fail_at)
		return -1;
	FZ_CHECK(s->len + n <= s->cap);
	memcpy(s->buf + s->len, buf, n);
	s->len += n;
	return 0;
}

struct result {
	int feed, finish;
	enum mp_state state;
	char filename[512];
	struct sink sink;
};

static void parse(const char *boundary, const char *body, size_t len, uint32_t seed, int fail_at,
		  struct result *r)
{
	struct mp *p = malloc(sizeof(*p));
	size_t off = 0;

	FZ_CHECK(p);
	memset(r, 0, sizeof(*r));
	r->sink.buf = malloc(len + 1);
	r->sink.cap = len;
	r->sink.fail_at = fail_at;
	FZ_CHECK(r->sink.buf);
	mp_init(p, boundary, on_file, &r->sink);
	while (off < len && r->feed == 0) {
		size_t n = seed ? 1 + fz_rand(&seed) % 4096 : len;

		if (seed && (seed & 3) == 0)
			n = 1 + (seed >> 8) % 8; /* often tiny: splits in delimiters */
		if (n > len - off)
			n = len - off;
		r->feed = mp_feed(p, body + off, n);
		off += n;
	}
	r->finish = mp_finish(p);
	r->state = p->state;
	FZ_CHECK(p->state != MP_ERROR || p->error);
	FZ_CHECK(strlen(p->filename) < sizeof(p->filename));
	memcpy(r->filename, p->filename, sizeof(r->filename));
	free(p);
}

/* What a stored filename and its Content-Disposition must be. */
static void check_filename(const char *raw)
{
	struct arena a;
	const char *clean, *disp, *q, *end;

	arena_init(&a);
	clean = media_clean_filename(&a, raw);
	FZ_CHECK(clean && *clean);
	FZ_CHECK(strlen(clean) <= MEDIA_FILENAME_MAX);
	FZ_CHECK(jh_utf8_len(clean, strlen(clean)) > 0);
	FZ_CHECK(!jh_has_control(clean, strlen(clean), false));
	FZ_CHECK(!strpbrk(clean, "\"';%/\\"));
	FZ_CHECK(strcmp(clean, ".") != 0 && strcmp(clean, "..") != 0);
	disp = media_disposition(&a, "attachment", clean);
	FZ_CHECK(disp);
	FZ_CHECK(!jh_has_control(disp, strlen(disp), false));
	/* attachment; filename="<ascii>"; filename*=UTF-8''<encoded> */
	q = strstr(disp, "; filename=\"");
	FZ_CHECK(q == disp + strlen("attachment"));
	q += strlen("; filename=\"");
	end = strchr(q, '"');
	FZ_CHECK(end && strncmp(end, "\"; filename*=UTF-8''", 20) == 0);
	FZ_CHECK(!memchr(q, '\\', (size_t)(end - q)));
	FZ_CHECK(strspn(end + 20, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
				  "0123456789!#$&+-.^_`|~%") == strlen(end + 20));
	arena_free(&a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz f = {data, size};
	char *ct = fz_str(&f, NULL), boundary[80], delim[84], *body;
	uint32_t seed = 0;
	struct result whole, chunked;
	size_t len;
	int i;

	for (i = 0; i < 4; i++)
		seed = seed << 8 | fz_byte(&f);
	seed |= 1; /* xorshift never leaves 0 */
	body = fz_rest(&f, &len);
	if (mp_boundary(ct, boundary, sizeof(boundary)) == 0) {
		size_t bl = strlen(boundary);

		FZ_CHECK(bl >= 1 && bl <= 70);
		FZ_CHECK(!strpbrk(boundary, "\r\n"));
	} else {
		strcpy(boundary, "fuzzboundary");
	}
	snprintf(delim, sizeof(delim), "\r\n--%s", boundary);

	parse(boundary, body, len, 0, 0, &whole);
	parse(boundary, body, len, seed, 0, &chunked);
	FZ_CHECK(whole.finish == chunked.finish);
	FZ_CHECK((whole.feed < 0) == (chunked.feed < 0));
	FZ_CHECK(whole.state == chunked.state);
	FZ_CHECK(whole.sink.len == chunked.sink.len);
	FZ_CHECK(memcmp(whole.sink.buf, chunked.sink.buf, whole.sink.len) == 0);
	FZ_CHECK(strcmp(whole.filename, chunked.filename) == 0);
	if (whole.finish == 0)
		FZ_CHECK(!memmem(whole.sink.buf, whole.sink.len, delim, strlen(delim)));
	if (whole.filename[0])
		check_filename(whole.filename);
	free(whole.sink.buf);
	free(chunked.sink.buf);

	/* storing the file fails part way: the parser stops with an error */
	if (chunked.sink.calls > 1) {
		parse(boundary, body, len, seed, 2, &chunked);
		FZ_CHECK(chunked.feed < 0 && chunked.finish < 0 && chunked.state == MP_ERROR);
		free(chunked.sink.buf);
	}
	free(body);
	free(ct);
	return 0;
}
