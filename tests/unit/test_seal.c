/* Unit tests for seal: a sealed secret opens only for the row it was sealed
 * for, unchanged, with the same key; bad blobs and small buffers are refused;
 * two seals of one secret differ (random nonces). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "seal.h"

static const unsigned char secret[20] = "12345678901234567890";

static void key_file(const char *content)
{
	char path[] = "/tmp/th-seal-test.XXXXXX";
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, content, strlen(content)), (ssize_t)strlen(content));
	close(fd);
	setenv("TH_SEAL_KEY_FILE", path, 1);
	assert_int_equal(seal_init(), 0);
	unlink(path);
}

static void test_round_trip(void **state)
{
	unsigned char blob[64], blob2[64], out[32];
	ssize_t n, n2;

	(void)state;
	key_file("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n");
	n = seal_close("totp:42", secret, sizeof(secret), blob, sizeof(blob));
	assert_int_equal(n, sizeof(secret) + SEAL_OVERHEAD);
	assert_int_equal(blob[0], SEAL_VERSION);
	assert_null(memmem(blob, (size_t)n, secret, sizeof(secret)));
	assert_int_equal(seal_open("totp:42", blob, (size_t)n, out, sizeof(out)), sizeof(secret));
	assert_memory_equal(out, secret, sizeof(secret));
	n2 = seal_close("totp:42", secret, sizeof(secret), blob2, sizeof(blob2));
	assert_int_equal(n2, n);
	assert_memory_not_equal(blob, blob2, (size_t)n);
}

static void test_refused(void **state)
{
	unsigned char blob[64], out[32];
	ssize_t n;

	(void)state;
	key_file("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
	n = seal_close("totp:42", secret, sizeof(secret), blob, sizeof(blob));
	assert_true(n > 0);
	/* another row */
	assert_int_equal(seal_open("totp:43", blob, (size_t)n, out, sizeof(out)), -1);
	/* every byte matters: version, nonce, ciphertext, tag */
	for (ssize_t i = 0; i < n; i++) {
		blob[i] ^= 0x01;
		assert_int_equal(seal_open("totp:42", blob, (size_t)n, out, sizeof(out)), -1);
		blob[i] ^= 0x01;
	}
	/* cut short, too small a buffer, a plain secret */
	assert_int_equal(seal_open("totp:42", blob, (size_t)n - 1, out, sizeof(out)), -1);
	assert_int_equal(seal_open("totp:42", blob, (size_t)n, out, sizeof(secret) - 1), -1);
	assert_int_equal(seal_open("totp:42", secret, sizeof(secret), out, sizeof(out)), -1);
	assert_int_equal(seal_close("totp:42", secret, sizeof(secret), blob, SEAL_OVERHEAD), -1);
	/* another key */
	key_file("another key, another key, another key, another key");
	assert_int_equal(seal_open("totp:42", blob, (size_t)n, out, sizeof(out)), -1);
}

static void test_short_key(void **state)
{
	char path[] = "/tmp/th-seal-test.XXXXXX";
	int fd = mkstemp(path);

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "short\n", 6), 6);
	close(fd);
	setenv("TH_SEAL_KEY_FILE", path, 1);
	assert_int_equal(seal_init(), -1);
	unlink(path);
	assert_int_equal(seal_init(), -1); /* gone */
	/* a failed start-up leaves no key from before behind */
	assert_int_equal(seal_close("totp:42", secret, sizeof(secret), (unsigned char[64]){0}, 64),
			 -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_short_key),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
