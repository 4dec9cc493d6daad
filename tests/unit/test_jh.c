/* Unit tests for lib/jhcore and fcgi-apps/lib/jh: strict parsing, UTF-8, typed getters. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "jh.h"

static struct arena a;
static char *noenv[] = {NULL};

static int setup(void **state)
{
	(void)state;
	arena_init(&a);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	arena_free(&a);
	return 0;
}

static void with_body(struct http_req *req, const char *body)
{
	http_req_init(req, &a, noenv, NULL, NULL);
	req->body = body;
	req->body_len = strlen(body);
}

static const char *err_code(struct http_req *req)
{
	static char code[64];
	struct json_object *o = json_tokener_parse(req->resp.body), *e, *c;

	code[0] = '\0';
	if (o && json_object_object_get_ex(o, "error", &e) &&
	    json_object_object_get_ex(e, "code", &c))
		snprintf(code, sizeof(code), "%s", json_object_get_string(c));
	json_object_put(o);
	return code;
}

static void test_utf8(void **state)
{
	(void)state;
	assert_int_equal(jh_utf8_len("abc", 3), 3);
	assert_int_equal(jh_utf8_len("\xc3\xa9t\xc3\xa9", 5), 3);
	assert_int_equal(jh_utf8_len("\xf0\x9f\x91\x8d", 4), 1);
	assert_int_equal(jh_utf8_len("\xff", 1), -1);
	assert_int_equal(jh_utf8_len("\xc3", 1), -1);             /* truncated */
	assert_int_equal(jh_utf8_len("\xc0\xaf", 2), -1);         /* overlong */
	assert_int_equal(jh_utf8_len("\xed\xa0\x80", 3), -1);     /* surrogate */
	assert_int_equal(jh_utf8_len("\xf4\x90\x80\x80", 4), -1); /* > U+10FFFF */
}

static void test_parse(void **state)
{
	struct json_object *o;
	char deep[200];

	(void)state;
	o = jh_parse("{\"a\": [1, 2]}  \n", 16);
	assert_non_null(o);
	json_object_put(o);
	assert_null(jh_parse("{not json", 9));
	assert_null(jh_parse("{\"a\":1} x", 9));
	assert_null(jh_parse("{\"a\":1}{}", 9));
	/* a NUL is not whitespace (json-c stops at it; found by fuzz_jh) */
	assert_null(jh_parse("{\"a\":1}\0", 8));
	assert_null(jh_parse("{\"a\":1}\0\0", 9));
	/* not JSON, though json-c reads them (found by fuzz_jh) */
	assert_null(jh_parse("{\"a\":NaN}", 10));
	assert_null(jh_parse("[1,-Infinity]", 13));
	assert_null(jh_parse("{\"a\":[1e999]}", 14));
	assert_non_null(o = jh_parse("[1.5e300]", 9));
	json_object_put(o);
	assert_null(jh_parse("", 0));
	assert_null(jh_parse("{\"a\":\"\xff\"}", 10));
	memset(deep, '[', 100);
	memset(deep + 100, ']', 100);
	assert_null(jh_parse(deep, 200)); /* deeper than JH_MAX_DEPTH */
}

static void test_body_object(void **state)
{
	struct http_req req;

	(void)state;
	with_body(&req, "[1,2]");
	assert_int_equal(jh_parse_body_or_400(&req), -1);
	assert_int_equal(req.resp.status, 400);
	assert_string_equal(err_code(&req), "bad_json");
	with_body(&req, "{\"x\":1}");
	assert_int_equal(jh_parse_body_or_400(&req), 0);
	assert_non_null(req.json);
	json_object_put(req.json);
}

static void test_strings(void **state)
{
	struct http_req req;
	const char *s;

	(void)state;
	with_body(&req, "{\"name\":\"\xc3\xa9t\xc3\xa9\",\"n\":3,\"e\":\"\",\"z\":\"a\\u0000b\","
			"\"ml\":\"a\\nb\",\"bell\":\"a\\u0007\"}");
	assert_int_equal(jh_parse_body_or_400(&req), 0);
	assert_int_equal(jh_string_or_400(&req, req.json, "name", 1, 3, JH_REQUIRED, &s), 0);
	assert_string_equal(s, "\xc3\xa9t\xc3\xa9");
	assert_int_equal(jh_string_or_400(&req, req.json, "name", 1, 2, JH_REQUIRED, &s), -1);
	assert_string_equal(err_code(&req), "validation_failed");
	assert_int_equal(jh_string_or_400(&req, req.json, "n", 0, 9, JH_REQUIRED, &s), -1);
	assert_int_equal(jh_string_or_400(&req, req.json, "e", 1, 9, JH_REQUIRED, &s), -1);
	assert_int_equal(jh_string_or_400(&req, req.json, "z", 0, 9, JH_REQUIRED, &s),
			 -1); /* NUL */
	/* newlines only where JH_MULTILINE allows them; other controls never */
	assert_int_equal(jh_string_or_400(&req, req.json, "ml", 1, 9, JH_REQUIRED, &s), -1);
	assert_int_equal(jh_string_or_400(&req, req.json, "ml", 1, 9, JH_MULTILINE, &s), 0);
	assert_string_equal(s, "a\nb");
	assert_int_equal(jh_string_or_400(&req, req.json, "bell", 1, 9, JH_MULTILINE, &s), -1);
	assert_int_equal(jh_string_or_400(&req, req.json, "missing", 1, 9, 0, &s), 0);
	assert_null(s);
	assert_int_equal(jh_string_or_400(&req, req.json, "missing", 1, 9, JH_REQUIRED, &s), -1);
	assert_non_null(strstr(req.resp.body, "\"field\":\"missing\""));
	json_object_put(req.json);
}

/* JH_NAME: a name refuses what changes how it reads without showing itself
 * ("Ali" RLO "ecila" shows as "Alialice"); text elsewhere keeps them */
static void test_names(void **state)
{
	static const char *const bad[] = {
		"Ali\xe2\x80\xae"
		"ecila", /* U+202E right-to-left override */
		"a\xe2\x80\x8b"
		"b",             /* U+200B zero width space */
		"a\xe2\x80\x8f", /* U+200F right-to-left mark */
		"\xe2\x81\xa6x", /* U+2066 left-to-right isolate */
		"x\xef\xbb\xbf", /* U+FEFF */
		"x\xd8\x9c",     /* U+061C arabic letter mark */
		"x\xc2\x85",     /* U+0085, a C1 control */
	};
	struct http_req req;
	const char *s;
	char body[128];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(jh_has_invisible(bad[i], strlen(bad[i])), 1);
		snprintf(body, sizeof(body), "{\"n\":\"%s\"}", bad[i]);
		with_body(&req, body);
		assert_int_equal(jh_parse_body_or_400(&req), 0);
		assert_int_equal(jh_string_or_400(&req, req.json, "n", 1, 64, JH_NAME, &s), -1);
		assert_string_equal(err_code(&req), "validation_failed");
		json_object_put(req.json);
	}
	/* accents, other scripts, emoji and the neighbours of the ranges pass */
	assert_int_equal(jh_has_invisible("\xc3\xa9t\xc3\xa9", 5), 0);
	assert_int_equal(jh_has_invisible("\xd8\xb3\xd9\x84\xd8\xa7\xd9\x85", 8), 0);
	assert_int_equal(jh_has_invisible("\xf0\x9f\x91\x8d", 4), 0);
	assert_int_equal(jh_has_invisible("\xe2\x80\x90", 3), 0); /* U+2010 hyphen */
	assert_int_equal(jh_has_invisible("\xe2\x80\xaf", 3), 0); /* U+202F nbsp */
	assert_int_equal(jh_has_invisible("\xc2\xa0", 2), 0);     /* U+00A0 */
	with_body(&req, "{\"n\":\"a\xe2\x80\xae"
			"b\"}");
	assert_int_equal(jh_parse_body_or_400(&req), 0);
	assert_int_equal(jh_string_or_400(&req, req.json, "n", 1, 64, 0, &s), 0);
	json_object_put(req.json);
}

static void test_ints(void **state)
{
	struct http_req req;
	int64_t v;
	bool present, b;

	(void)state;
	with_body(&req, "{\"i\":42,\"f\":1.0,\"s\":\"1\",\"big\":99999999999999999999,\"t\":true}");
	assert_int_equal(jh_parse_body_or_400(&req), 0);
	assert_int_equal(jh_int_or_400(&req, req.json, "i", 1, 100, true, &present, &v), 0);
	assert_true(present);
	assert_int_equal(v, 42);
	assert_int_equal(jh_int_or_400(&req, req.json, "i", 1, 10, true, &present, &v), -1);
	assert_int_equal(jh_int_or_400(&req, req.json, "f", 0, 10, true, &present, &v), -1);
	assert_int_equal(jh_int_or_400(&req, req.json, "s", 0, 10, true, &present, &v), -1);
	assert_int_equal(jh_int_or_400(&req, req.json, "big", 0, INT64_MAX, true, &present, &v),
			 -1);
	assert_int_equal(jh_bool_or_400(&req, req.json, "t", true, &present, &b), 0);
	assert_true(b);
	assert_int_equal(jh_bool_or_400(&req, req.json, "i", true, &present, &b), -1);
	json_object_put(req.json);
}

static void test_ids(void **state)
{
	struct http_req req;
	int64_t id;

	(void)state;
	http_req_init(&req, &a, noenv, NULL, NULL);
	assert_int_equal(jh_id_or_404(&req, "17", &id), 0);
	assert_int_equal(id, 17);
	assert_int_equal(jh_id_or_404(&req, "0", &id), -1);
	assert_int_equal(req.resp.status, 404);
	assert_int_equal(jh_id_or_404(&req, "-1", &id), -1);
	assert_int_equal(jh_id_or_404(&req, "abc", &id), -1);
	assert_int_equal(jh_id_or_404(&req, "9223372036854775808", &id), -1);
	assert_int_equal(jh_id_or_404(&req, "1e3", &id), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_utf8),        cmocka_unit_test(test_parse),
		cmocka_unit_test(test_body_object), cmocka_unit_test(test_strings),
		cmocka_unit_test(test_names),       cmocka_unit_test(test_ints),
		cmocka_unit_test(test_ids),
	};

	return cmocka_run_group_tests_name("jh", tests, setup, teardown);
}
