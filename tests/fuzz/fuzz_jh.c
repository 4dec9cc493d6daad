/* fuzz_jh: JSON request bodies (lib/jhcore and fcgi-apps/lib/jh): jh_parse, the body check and the
 * typed getters handlers use, jh_utf8_len, jh_id_or_404.
 *
 * Input: a byte of bounds, then the body.  Checks: jh_utf8_len agrees with
 * an independent UTF-8 decoder; what jh_parse accepts is valid UTF-8 and
 * serializes back to JSON that parses again; every getter either fills its
 * output within its bounds or replies 400 (404 for ids). */
#include <json-c/json.h>
#include <string.h>

#include "fuzz.h"
#include "jh.h"

/* Unicode 15, table 3-7: well-formed UTF-8 byte sequences. */
static long ref_utf8_len(const unsigned char *s, size_t n)
{
	long count = 0;
	size_t i = 0;

	while (i < n) {
		unsigned c = s[i];
		unsigned lo = 0x80, hi = 0xbf;
		size_t k;

		if (c <= 0x7f) {
			i++;
			count++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			k = 1;
		else if (c == 0xe0)
			k = 2, lo = 0xa0;
		else if ((c >= 0xe1 && c <= 0xec) || c == 0xee || c == 0xef)
			k = 2;
		else if (c == 0xed)
			k = 2, hi = 0x9f;
		else if (c == 0xf0)
			k = 3, lo = 0x90;
		else if (c >= 0xf1 && c <= 0xf3)
			k = 3;
		else if (c == 0xf4)
			k = 3, hi = 0x8f;
		else
			return -1;
		if (n - i <= k)
			return -1;
		if (s[i + 1] < lo || s[i + 1] > hi)
			return -1;
		for (size_t j = 2; j <= k; j++)
			if (s[i + j] < 0x80 || s[i + j] > 0xbf)
				return -1;
		i += k + 1;
		count++;
	}
	return count;
}

static void req_init(struct http_req *req, struct arena *a)
{
	memset(req, 0, sizeof(*req));
	req->arena = a;
}

static void fields(struct arena *a, struct json_object *o, unsigned knob)
{
	static const char *const names[] = {"name",  "body",      "title",    "id",
					    "limit", "is_public", "reply_to", ""};
	size_t min = knob & 3, max = 1 + (knob >> 2) * 40;

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		struct http_req req;
		const char *s;
		int64_t v;
		bool b, present;
		int rc;

		req_init(&req, a);
		rc = jh_string_or_400(&req, o, names[i], min, max,
				      (knob & 1 ? JH_REQUIRED : 0) | (knob & 2 ? JH_MULTILINE : 0),
				      &s);
		if (rc == 0 && s) {
			long n = jh_utf8_len(s, strlen(s));

			FZ_CHECK(n >= (long)min && n <= (long)max);
			FZ_CHECK(!jh_has_control(s, strlen(s), knob & 2));
		} else if (rc < 0) {
			FZ_CHECK(req.resp.status == 400);
		}
		req_init(&req, a);
		rc = jh_int_or_400(&req, o, names[i], -5, 1000, knob & 1, &present, &v);
		FZ_CHECK(rc < 0 ? req.resp.status == 400 : (!present || (v >= -5 && v <= 1000)));
		req_init(&req, a);
		rc = jh_bool_or_400(&req, o, names[i], knob & 1, &present, &b);
		FZ_CHECK(rc < 0 ? req.resp.status == 400 : 1);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz f = {data, size};
	unsigned knob = fz_byte(&f);
	size_t len;
	char *body = fz_rest(&f, &len);
	struct json_object *o;
	struct http_req req;
	struct arena a;
	long n = jh_utf8_len(body, len);
	int64_t id;

	fz_quiet();
	FZ_CHECK(n == ref_utf8_len((const unsigned char *)body, len));
	arena_init(&a);
	o = jh_parse(body, len);
	if (o) {
		const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
		struct json_object *again;

		FZ_CHECK(n >= 0);
		/* JSON text holds no raw NUL, in a string or after the value */
		FZ_CHECK(!memchr(body, '\0', len));
		FZ_CHECK(s);
		/* a space after it: json-c cannot tell a number at the very end
		 * of the text from one cut short, so jh_parse refuses a bare "1"
		 * (bodies and payloads are objects: nothing of ours sends one) */
		again = jh_parse(arena_printf(&a, "%s ", s), strlen(s) + 1);
		FZ_CHECK(again);
		FZ_CHECK(json_object_equal(o, again));
		json_object_put(again);
		if (json_object_is_type(o, json_type_object))
			fields(&a, o, knob);
	}
	req_init(&req, &a);
	req.body = body;
	req.body_len = len;
	if (jh_parse_body_or_400(&req) == 0) {
		FZ_CHECK(o && json_object_is_type(req.json, json_type_object));
		json_object_put(req.json);
	} else {
		FZ_CHECK(req.resp.status == 400);
	}
	json_object_put(o);
	/* the body as a path parameter */
	req_init(&req, &a);
	if (jh_id_or_404(&req, body, &id) == 0)
		FZ_CHECK(id >= 1);
	else
		FZ_CHECK(req.resp.status == 404);
	arena_free(&a);
	free(body);
	return 0;
}
