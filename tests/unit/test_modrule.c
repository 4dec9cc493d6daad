/* Unit tests for lib/modrule: the content limits and the packing the
 * broker's cache holds (slow mode's Redis clock runs in
 * tests/integration/slowmode.test.mjs). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>

#include "modrule.h"

static void test_pack(void **state)
{
	struct modrule m = {.slow_s = MODRULE_SLOW_MAX, .max_len = 17, .links = 0}, back;

	(void)state;
	modrule_unpack(modrule_pack(&m), &back);
	assert_int_equal(back.slow_s, MODRULE_SLOW_MAX);
	assert_int_equal(back.max_len, 17);
	assert_int_equal(back.links, 0);
	/* a value never packed (PostgreSQL found no community): no rules */
	modrule_unpack(0, &back);
	assert_true(modrule_is_default(&back));
	modrule_default(&m);
	assert_true(modrule_is_default(&m));
	m.links = 0;
	assert_false(modrule_is_default(&m));
}

static void test_body(void **state)
{
	struct modrule m;
	const char *s;

	(void)state;
	modrule_default(&m);
	m.max_len = 3;
	assert_int_equal(modrule_body(&m, "abc", 3), MODRULE_OK);
	assert_int_equal(modrule_body(&m, "abcd", 4), MODRULE_TOO_LONG);
	s = "\xc3\xa9\xc3\xa9\xc3\xa9"; /* three code points, six bytes */
	assert_int_equal(modrule_body(&m, s, strlen(s)), MODRULE_OK);
	m.max_len = MODRULE_LEN_MAX;
	assert_int_equal(modrule_body(&m, "see https://x.y", 15), MODRULE_OK);
	m.links = 0;
	assert_int_equal(modrule_body(&m, "see HTTPS://x.y", 15), MODRULE_LINK);
	assert_int_equal(modrule_body(&m, "http://", 7), MODRULE_LINK);
	assert_int_equal(modrule_body(&m, "go to Www.example.org", 21), MODRULE_LINK);
	assert_int_equal(modrule_body(&m, "http:/ and www", 14), MODRULE_OK);
	assert_non_null(modrule_why_text(MODRULE_LINK));
	assert_null(modrule_why_text(MODRULE_OK));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pack),
		cmocka_unit_test(test_body),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
