/* Unit tests for fcgi-apps/lib/router: matching, parameters, 404 vs 405, validation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>

#include "router.h"

static void h(struct http_req *req)
{
	(void)req;
}

static const struct route table[] = {
	{"GET", "/api/posts/:id", h, 0, 0},
	{"PATCH", "/api/posts/:id", h, ROUTE_JSON, 0},
	{"DELETE", "/api/posts/:id", h, 0, 0},
	{"GET", "/api/communities/:id/members/:user_id", h, 0, 0},
	{"PUT", "/api/communities/:id/members/:user_id", h, 0, 0},
	{"GET", "/api/communities", h, 0, 0},
	{"POST", "/api/x/echo", h, ROUTE_TEST, 0},
};
#define N ROUTES_COUNT(table)

static void test_literal(void **state)
{
	struct route_match m;

	(void)state;
	assert_int_equal(router_match(table, N, "GET", "/api/communities", 0, &m), ROUTER_FOUND);
	assert_int_equal(m.index, 5);
	assert_int_equal(m.nparams, 0);
}

static void test_params(void **state)
{
	struct route_match m;

	(void)state;
	assert_int_equal(router_match(table, N, "PUT", "/api/communities/12/members/7", 0, &m),
			 ROUTER_FOUND);
	assert_int_equal(m.index, 4);
	assert_int_equal(m.nparams, 2);
	assert_int_equal(m.param_lens[0], 2);
	assert_memory_equal(m.params[0], "12", 2);
	assert_memory_equal(m.params[1], "7", 1);
	assert_int_equal(m.param_name_lens[1], 7);
	assert_memory_equal(m.param_names[1], "user_id", 7);
}

static void test_not_found(void **state)
{
	struct route_match m;

	(void)state;
	assert_int_equal(router_match(table, N, "GET", "/api/posts", 0, &m), ROUTER_NOT_FOUND);
	assert_int_equal(router_match(table, N, "GET", "/api/posts/", 0, &m), ROUTER_NOT_FOUND);
	assert_int_equal(router_match(table, N, "GET", "/api/posts/1/x", 0, &m), ROUTER_NOT_FOUND);
	assert_int_equal(router_match(table, N, "GET", "/api/communitiesx", 0, &m),
			 ROUTER_NOT_FOUND);
	assert_int_equal(router_match(table, N, "GET", "", 0, &m), ROUTER_NOT_FOUND);
	assert_int_equal(router_match(table, N, "GET", "api/communities", 0, &m), ROUTER_NOT_FOUND);
}

static void test_method_not_allowed(void **state)
{
	struct route_match m;

	(void)state;
	assert_int_equal(router_match(table, N, "POST", "/api/posts/3", 0, &m),
			 ROUTER_METHOD_NOT_ALLOWED);
	assert_string_equal(m.allow, "GET, PATCH, DELETE");
	assert_int_equal(router_match(table, N, "DELETE", "/api/communities", 0, &m),
			 ROUTER_METHOD_NOT_ALLOWED);
	assert_string_equal(m.allow, "GET");
}

static void test_test_routes(void **state)
{
	struct route_match m;

	(void)state;
	assert_int_equal(router_match(table, N, "POST", "/api/x/echo", 0, &m), ROUTER_NOT_FOUND);
	assert_int_equal(router_match(table, N, "POST", "/api/x/echo", 1, &m), ROUTER_FOUND);
}

static void test_long_path(void **state)
{
	static char path[HTTP_PATH_MAX + 16];
	struct route_match m;

	(void)state;
	memset(path, 'a', sizeof(path) - 1);
	path[0] = '/';
	assert_int_equal(router_match(table, N, "GET", path, 0, &m), ROUTER_NOT_FOUND);
}

static void test_validate(void **state)
{
	static const struct route dup[] = {
		{"GET", "/a/:id", h, 0, 0},
		{"GET", "/a/:id", h, 0, 0},
	};
	static const struct route noslash[] = {{"GET", "a", h, 0, 0}};
	static const struct route emptyparam[] = {{"GET", "/a/:", h, 0, 0}};
	char err[128];

	(void)state;
	assert_int_equal(router_validate(table, N, err, sizeof(err)), 0);
	assert_int_equal(router_validate(dup, 2, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "twice"));
	assert_int_equal(router_validate(noslash, 1, err, sizeof(err)), -1);
	assert_int_equal(router_validate(emptyparam, 1, err, sizeof(err)), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_literal),     cmocka_unit_test(test_params),
		cmocka_unit_test(test_not_found),   cmocka_unit_test(test_method_not_allowed),
		cmocka_unit_test(test_test_routes), cmocka_unit_test(test_long_path),
		cmocka_unit_test(test_validate),
	};

	return cmocka_run_group_tests_name("router", tests, NULL, NULL);
}
