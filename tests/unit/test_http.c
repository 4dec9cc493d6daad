/* Unit tests for fcgi-apps/lib/http: params, headers, query, body limits, replies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <json-c/json.h>
#include <string.h>

#include "http.h"

struct membody {
	const char *data;
	size_t len, pos, chunk;
};

static long mem_read(void *ctx, char *buf, size_t n)
{
	struct membody *b = ctx;
	size_t k = b->len - b->pos;

	if (k > n)
		k = n;
	if (b->chunk && k > b->chunk)
		k = b->chunk; /* short reads, as a stream gives them */
	memcpy(buf, b->data + b->pos, k);
	b->pos += k;
	return (long)k;
}

static void test_init(void **state)
{
	char *env[] = {"REQUEST_METHOD=POST",
		       "REQUEST_URI=/api/x/1?limit=5&q=a%20b+c&flag",
		       "REMOTE_ADDR=127.0.0.1",
		       "REQUEST_ID=abc123",
		       "HTTP_AUTHORIZATION=Bearer t",
		       "CONTENT_TYPE=application/json",
		       "CONTENT_LENGTH=7",
		       NULL};
	struct arena a;
	struct http_req req;

	(void)state;
	arena_init(&a);
	http_req_init(&req, &a, env, NULL, NULL);
	assert_string_equal(req.method, "POST");
	assert_string_equal(req.path, "/api/x/1");
	assert_string_equal(req.query, "limit=5&q=a%20b+c&flag");
	assert_string_equal(req.client_addr, "127.0.0.1");
	assert_string_equal(req.request_id, "abc123");
	assert_int_equal(req.content_length, 7);
	assert_string_equal(http_header(&req, "Authorization"), "Bearer t");
	assert_string_equal(http_header(&req, "content-type"), "application/json");
	assert_null(http_header(&req, "X-Missing"));
	assert_string_equal(http_query(&req, "limit"), "5");
	assert_string_equal(http_query(&req, "q"), "a b c");
	assert_string_equal(http_query(&req, "flag"), "");
	assert_null(http_query(&req, "lim"));
	arena_free(&a);
}

static void test_defaults(void **state)
{
	char *env[] = {NULL};
	struct arena a;
	struct http_req req;

	(void)state;
	arena_init(&a);
	http_req_init(&req, &a, env, NULL, NULL);
	assert_string_equal(req.method, "GET");
	assert_string_equal(req.path, "/");
	assert_string_equal(req.request_id, "-");
	assert_int_equal(req.content_length, -1);
	arena_free(&a);
}

static void test_decode(void **state)
{
	struct arena a;

	(void)state;
	arena_init(&a);
	assert_string_equal(http_decode(&a, "%F0%9F%91%8D", 12, false), "\xf0\x9f\x91\x8d");
	assert_string_equal(http_decode(&a, "a+b", 3, false), "a+b");
	assert_string_equal(http_decode(&a, "a+b", 3, true), "a b");
	assert_null(http_decode(&a, "%2", 2, false));
	assert_null(http_decode(&a, "%zz", 3, false));
	assert_null(http_decode(&a, "a%00b", 5, false));
	arena_free(&a);
}

static void test_body_ok(void **state)
{
	char *env[] = {"CONTENT_LENGTH=11", NULL};
	struct membody b = {"hello world", 11, 0, 3};
	struct arena a;
	struct http_req req;

	(void)state;
	arena_init(&a);
	http_req_init(&req, &a, env, mem_read, &b);
	assert_int_equal(http_read_body(&req, 64), 0);
	assert_int_equal(req.body_len, 11);
	assert_string_equal(req.body, "hello world");
	arena_free(&a);
}

static void test_body_too_large(void **state)
{
	char *env[] = {"CONTENT_LENGTH=11", NULL};
	char *noenv[] = {NULL};
	struct membody b = {"hello world", 11, 0, 0};
	struct arena a;
	struct http_req req;

	(void)state;
	arena_init(&a);
	/* declared length over the limit: refused before reading */
	http_req_init(&req, &a, env, mem_read, &b);
	assert_int_equal(http_read_body(&req, 10), -1);
	assert_int_equal(req.resp.status, 413);
	assert_int_equal(b.pos, 0);
	/* no Content-Length: the bytes themselves decide */
	http_req_init(&req, &a, noenv, mem_read, &b);
	assert_int_equal(http_read_body(&req, 10), -1);
	assert_int_equal(req.resp.status, 413);
	assert_non_null(strstr(req.resp.body, "\"too_large\""));
	arena_free(&a);
}

static void test_body_short(void **state)
{
	char *env[] = {"CONTENT_LENGTH=20", NULL};
	struct membody b = {"hello", 5, 0, 0};
	struct arena a;
	struct http_req req;

	(void)state;
	arena_init(&a);
	http_req_init(&req, &a, env, mem_read, &b);
	assert_int_equal(http_read_body(&req, 64), -1);
	assert_int_equal(req.resp.status, 400);
	arena_free(&a);
}

static void test_error_reply(void **state)
{
	char *env[] = {NULL};
	struct arena a;
	struct http_req req;
	struct json_object *o, *err, *v;
	size_t len;
	char *out;

	(void)state;
	arena_init(&a);
	http_req_init(&req, &a, env, NULL, NULL);
	http_reply_error(&req, TH_EVALIDATION, "name\r\nX-Evil: 1", "name");
	assert_int_equal(req.resp.status, 400);
	o = json_tokener_parse(req.resp.body);
	assert_non_null(o);
	assert_true(json_object_object_get_ex(o, "error", &err));
	assert_true(json_object_object_get_ex(err, "code", &v));
	assert_string_equal(json_object_get_string(v), "validation_failed");
	assert_true(json_object_object_get_ex(err, "message", &v));
	assert_null(strchr(json_object_get_string(v), '\n'));
	assert_true(json_object_object_get_ex(err, "field", &v));
	assert_string_equal(json_object_get_string(v), "name");
	json_object_put(o);

	http_reply_error(&req, TH_EUNAVAILABLE, NULL, NULL);
	assert_int_equal(req.resp.status, 503);
	http_set_header(&req, "Retry-After", "7");
	out = http_serialize(&req, &len);
	assert_non_null(strstr(out, "Status: 503 Service Unavailable\r\n"));
	assert_non_null(strstr(out, "Retry-After: 7\r\n"));
	assert_null(strstr(out, "Retry-After: 5"));
	assert_non_null(strstr(out, "Content-Type: application/json; charset=utf-8\r\n"));
	arena_free(&a);
}

static void test_serialize(void **state)
{
	char *env[] = {NULL};
	struct arena a;
	struct http_req req;
	size_t len;
	char *out;

	(void)state;
	arena_init(&a);
	http_req_init(&req, &a, env, NULL, NULL);
	http_reply_empty(&req, 204);
	assert_int_equal(http_add_header(&req, "X-Test", "a\r\nb"), 0);
	out = http_serialize(&req, &len);
	assert_string_equal(out, "Status: 204 No Content\r\nX-Test: a??b\r\n\r\n");
	assert_int_equal(len, strlen(out));
	http_reply_json(&req, 201, json_tokener_parse("{\"a\":1}"));
	out = http_serialize(&req, &len);
	assert_non_null(strstr(out, "Content-Length: 7\r\n"));
	assert_null(strstr(out, "X-Test")); /* headers go with their reply */
	assert_memory_equal(out + len - 7, "{\"a\":1}", 7);
	arena_free(&a);
}

/* Over-long values, set by any path (a stored mime, a raw header entry that
 * bypassed http_add_header's cleaning), are cut at their bound and cleaned;
 * the result is exactly as long as it says and nothing is written past it. */
static void test_serialize_bounds(void **state)
{
	char *env[] = {NULL};
	static char huge[64 * 1024], name[300];
	struct arena a;
	struct http_req req;
	size_t len, i;
	char *out, *line, *eol;

	(void)state;
	memset(huge, 'v', sizeof(huge) - 1);
	huge[100] = '\r';
	huge[101] = '\n';
	memset(name, 'N', sizeof(name) - 1);
	arena_init(&a);
	http_req_init(&req, &a, env, NULL, NULL);
	http_reply_raw(&req, 200, huge, "body", 4);
	/* headers written straight into the table, as a careless handler might */
	for (i = 0; i < HTTP_MAX_HEADERS; i++) {
		req.resp.headers[i].name = i == 3 ? name : "X-Long";
		req.resp.headers[i].value = huge;
	}
	req.resp.nheaders = HTTP_MAX_HEADERS;
	out = http_serialize(&req, &len);
	assert_non_null(out);
	assert_int_equal(strlen(out), len);
	assert_memory_equal(out + len - 4, "body", 4);
	/* every line within its bounds; no CR/LF inside a value */
	for (line = out; (eol = strstr(line, "\r\n")) && eol != line; line = eol + 2)
		assert_true((size_t)(eol - line) <=
			    HTTP_HEADER_NAME_MAX + 2 + HTTP_HEADER_VALUE_MAX + 16);
	assert_ptr_equal(eol, line); /* the blank line ends the block */
	assert_int_equal(strlen(line + 2), 4);
	assert_non_null(strstr(out, "Content-Type: vvv"));
	/* a malformed response is refused, not serialized */
	req.resp.nheaders = HTTP_MAX_HEADERS + 1;
	assert_null(http_serialize(&req, &len));
	req.resp.nheaders = 1;
	req.resp.headers[0].value = NULL;
	assert_null(http_serialize(&req, &len));
	arena_free(&a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_init),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_decode),
		cmocka_unit_test(test_body_ok),
		cmocka_unit_test(test_body_too_large),
		cmocka_unit_test(test_body_short),
		cmocka_unit_test(test_error_reply),
		cmocka_unit_test(test_serialize),
		cmocka_unit_test(test_serialize_bounds),
	};

	return cmocka_run_group_tests_name("http", tests, NULL, NULL);
}
