/* Unit tests for totp: RFC 6238 Appendix B's SHA1 vectors (8 digits, and
 * their last 6), the window of accepted steps and the step it reports,
 * malformed codes, and base32 against RFC 4648's examples. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "totp.h"

static const uint8_t rfc_secret[] = "12345678901234567890";

static void test_rfc6238_vectors(void **state)
{
	static const struct {
		uint64_t t;
		long code8;
	} v[] = {{59, 94287082},         {1111111109, 7081804},  {1111111111, 14050471},
		 {1234567890, 89005924}, {2000000000, 69279037}, {20000000000ULL, 65353130}};

	(void)state;
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		assert_int_equal(totp_code(rfc_secret, 20, v[i].t / 30, 8), v[i].code8);
		assert_int_equal(totp_code(rfc_secret, 20, v[i].t / 30, 6), v[i].code8 % 1000000);
	}
}

static void test_check_window(void **state)
{
	char code[8];
	uint64_t step = 0, now = 1234567890;

	(void)state;
	snprintf(code, sizeof(code), "%06ld", totp_code(rfc_secret, 20, now / 30, 6));
	assert_int_equal(totp_check(rfc_secret, 20, code, now, &step), 1);
	assert_int_equal(step, now / 30);
	/* one step of drift either way is accepted, and says which step */
	assert_int_equal(totp_check(rfc_secret, 20, code, now + 30, &step), 1);
	assert_int_equal(step, now / 30);
	assert_int_equal(totp_check(rfc_secret, 20, code, now - 30, &step), 1);
	/* two steps away is not */
	assert_int_equal(totp_check(rfc_secret, 20, code, now + 90, &step), 0);
	/* another secret's code is not */
	assert_int_equal(totp_check((const uint8_t *)"abcdefghijabcdefghij", 20, code, now, &step),
			 0);
}

static void test_check_malformed(void **state)
{
	uint64_t step = 0;

	(void)state;
	assert_int_equal(totp_check(rfc_secret, 20, NULL, 59, &step), 0);
	assert_int_equal(totp_check(rfc_secret, 20, "", 59, &step), 0);
	assert_int_equal(totp_check(rfc_secret, 20, "28708", 59, &step), 0);
	assert_int_equal(totp_check(rfc_secret, 20, "2870821", 59, &step), 0);
	assert_int_equal(totp_check(rfc_secret, 20, "28708a", 59, &step), 0);
	assert_int_equal(totp_check(rfc_secret, 20, "-28708", 59, &step), 0);
	/* the right one, for contrast */
	assert_int_equal(totp_check(rfc_secret, 20, "287082", 59, &step), 1);
}

static void test_base32(void **state)
{
	char out[TOTP_B32_SIZE(20)];

	(void)state;
	/* RFC 4648 section 10, without the padding */
	assert_string_equal(totp_b32((const uint8_t *)"", 0, out), "");
	assert_string_equal(totp_b32((const uint8_t *)"f", 1, out), "MY");
	assert_string_equal(totp_b32((const uint8_t *)"fo", 2, out), "MZXQ");
	assert_string_equal(totp_b32((const uint8_t *)"foo", 3, out), "MZXW6");
	assert_string_equal(totp_b32((const uint8_t *)"foob", 4, out), "MZXW6YQ");
	assert_string_equal(totp_b32((const uint8_t *)"fooba", 5, out), "MZXW6YTB");
	assert_string_equal(totp_b32((const uint8_t *)"foobar", 6, out), "MZXW6YTBOI");
	assert_string_equal(totp_b32(rfc_secret, 20, out), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc6238_vectors),
		cmocka_unit_test(test_check_window),
		cmocka_unit_test(test_check_malformed),
		cmocka_unit_test(test_base32),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
