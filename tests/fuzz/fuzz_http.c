/* fuzz_http: FastCGI params, headers, the query string, the body reader and
 * the response writer of fcgi-apps/lib/http.
 *
 * Input: NUL-separated "NAME=value" params (the envp nginx sends, at most
 * 32), an empty field, then one byte for the body limit and the read chunk
 * size, then the body.  Checks: decoded values are no longer than their
 * source and hold no NUL; the body read keeps its limit; whatever a header
 * value holds, the serialized response has exactly the header lines set. */
#include <json-c/json.h>
#include <string.h>

#include "fuzz.h"
#include "http.h"

#define MAX_ENV 32

struct body {
	const char *p;
	size_t len, pos, chunk;
};

static long body_read(void *ctx, char *buf, size_t n)
{
	struct body *b = ctx;
	size_t k = b->len - b->pos;

	if (k > n)
		k = n;
	if (k > b->chunk)
		k = b->chunk;
	memcpy(buf, b->p + b->pos, k);
	b->pos += k;
	return (long)k;
}

static void check_decoded(const char *v, size_t srclen)
{
	if (v)
		FZ_CHECK(strlen(v) <= srclen);
}

/* The header block of a serialized response: lines "name: value" ended by
 * CRLF, no bare CR or LF, n lines in all, then an empty line. */
static void check_serialized(const char *out, size_t len, int nlines)
{
	const char *end = memmem(out, len, "\r\n\r\n", 4);
	int lines = 0;

	FZ_CHECK(end);
	for (const char *p = out; p < end + 2; p++) {
		if (*p == '\r') {
			FZ_CHECK(p[1] == '\n');
			lines++;
			p++;
		} else {
			FZ_CHECK(*p != '\n' && *p != '\0');
		}
	}
	FZ_CHECK(lines == nlines);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const headers[] = {
		"Authorization",
		"Content-Type",
		"content-length",
		"Cookie",
		"If-None-Match",
		"X-Forwarded-For",
		"Range",
		"",
		("A-header-name-longer-than-the-buffer-http_header-builds-its-key-in-"
		 "A-header-name-longer-than-the-buffer-http_header-builds-its-key-in"),
	};
	static const char *const queries[] = {"limit", "cursor", "q", "exp", "sig", "", "a+b"};
	struct fz f = {data, size};
	char *env[MAX_ENV + 1], *fields[MAX_ENV], *body;
	struct body b = {0};
	struct arena a;
	struct http_req req;
	size_t n = 0, len, i, blen, limit, slen;
	unsigned knob;
	const char *v, *hval = NULL;
	char *out;
	int base;

	fz_quiet();
	while (n < MAX_ENV && f.n) {
		fields[n] = fz_str(&f, &len);
		if (len == 0) {
			free(fields[n]);
			break;
		}
		env[n] = fields[n];
		n++;
	}
	env[n] = NULL;
	knob = fz_byte(&f);
	body = fz_rest(&f, &blen);
	b.p = body;
	b.len = blen;
	b.chunk = 1 + (knob & 15) * 97;
	limit = (size_t)16 << (knob >> 4); /* 16 B .. 512 KiB */

	arena_init(&a);
	http_req_init(&req, &a, env, body_read, &b);
	FZ_CHECK(req.method && req.path && req.query && req.client_addr && req.request_id);
	FZ_CHECK(!strchr(req.path, '?'));
	for (i = 0; i < sizeof(headers) / sizeof(headers[0]); i++) {
		v = http_header(&req, headers[i]);
		if (v && !hval)
			hval = v;
	}
	for (i = 0; i < sizeof(queries) / sizeof(queries[0]); i++)
		check_decoded(http_query(&req, queries[i]), strlen(req.query));
	/* every param name the request has, as a query name too */
	for (i = 0; i < n; i++) {
		const char *eq = strchr(env[i], '=');
		char name[64];

		slen = eq ? (size_t)(eq - env[i]) : strlen(env[i]);
		if (slen >= sizeof(name))
			continue;
		memcpy(name, env[i], slen);
		name[slen] = '\0';
		FZ_CHECK(!eq || http_env(&req, name) != NULL);
		check_decoded(http_query(&req, name), strlen(req.query));
	}
	slen = strlen(req.path);
	check_decoded(http_decode(&a, req.path, slen, false), slen);
	check_decoded(http_decode(&a, req.path, slen, true), slen);

	if (http_read_body(&req, limit) == 0) {
		FZ_CHECK(req.body && req.body_len <= limit && req.body_len <= blen);
		FZ_CHECK(req.body[req.body_len] == '\0');
		FZ_CHECK(memcmp(req.body, body, req.body_len) == 0);
		FZ_CHECK(req.content_length < 0 || (size_t)req.content_length == req.body_len);
	} else {
		FZ_CHECK(req.resp.status == 400 || req.resp.status == 413 ||
			 req.resp.status == 500);
	}

	/* client bytes in an error reply and in header values */
	http_reply_error(&req, TH_EVALIDATION, hval, http_query(&req, "q"));
	base = 3; /* Status, Content-Type, Content-Length */
	if (hval) {
		FZ_CHECK(http_set_header(&req, "X-Echo", hval) == 0);
		FZ_CHECK(http_set_header(&req, "X-Echo", body) == 0);
		FZ_CHECK(http_add_header(&req, "ETag", req.path) == 0);
		base += 2;
	}
	out = http_serialize(&req, &len);
	FZ_CHECK(out);
	check_serialized(out, len, base);
	/* the error body is JSON that parses back */
	{
		const char *bodyp = (const char *)memmem(out, len, "\r\n\r\n", 4) + 4;
		char *copy = arena_strndup(&a, bodyp, len - (size_t)(bodyp - out));
		struct json_object *o = copy ? json_tokener_parse(copy) : NULL;

		FZ_CHECK(o && json_object_is_type(o, json_type_object));
		json_object_put(o);
	}

	arena_free(&a);
	for (i = 0; i < n; i++)
		free(fields[i]);
	free(body);
	return 0;
}
