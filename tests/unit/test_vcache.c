/* Unit tests for lib/vcache's pure parts: key building and fresh versions
 * (bumps and stores run against Redis in community.test.mjs, which also
 * writes while Redis is stopped and reads no stale page after its restart). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "vcache.h"

static void test_key(void **state)
{
	char k[32];

	(void)state;
	vcache_key(k, sizeof(k), "th:feed:{c7}:v", "123456", 3, ":20");
	assert_string_equal(k, "th:feed:{c7}:v123:20");
	/* exactly full: 31 bytes and the NUL */
	vcache_key(k, sizeof(k), "aaaaaaaaaaaaaaaaaaaa", "bbbbbbbbbb", 10, "c");
	assert_int_equal(strlen(k), 31);
	/* one over: empty, never cut into another key's name */
	vcache_key(k, sizeof(k), "aaaaaaaaaaaaaaaaaaaa", "bbbbbbbbbb", 10, "cc");
	assert_string_equal(k, "");
}

static void test_fresh(void **state)
{
	char a[24], b[24];

	(void)state;
	vcache_fresh_version(a);
	vcache_fresh_version(b);
	assert_true(strlen(a) >= 16 && strlen(a) <= 20);
	assert_true(strspn(a, "0123456789") == strlen(a));
	/* microseconds of the wall clock: never below a version made before */
	assert_true(strtoll(b, NULL, 10) >= strtoll(a, NULL, 10));
	assert_int_equal(vcache_pending(), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_key),
		cmocka_unit_test(test_fresh),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
