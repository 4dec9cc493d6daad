/* Unit tests for the broker's verified-token cache
 * (lib/tokcache): a repeated token is served from the
 * cache, yet revocation is asked on every call; a forged or altered token
 * is never served from it; an entry ends with the token's exp; the table
 * stays within its bound. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "arena.h"
#include "tokcache.h"
#include "token.h"

static char dir[64];
static struct arena arena;
static int64_t revoked_sid; /* the session the fake store says is revoked */
static int store_down;      /* the fake store cannot decide */
static unsigned long asked; /* revocation checks made */

static int fake_revoked(int64_t sid)
{
	asked++;
	if (store_down)
		return -1;
	return sid == revoked_sid;
}

static int setup(void **state)
{
	char cmd[512], priv[128], pub[128];

	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/th-tokcache-test.%d", (int)getpid());
	mkdir(dir, 0700);
	snprintf(priv, sizeof(priv), "%s/priv.pem", dir);
	snprintf(pub, sizeof(pub), "%s/pub.pem", dir);
	snprintf(cmd, sizeof(cmd),
		 "openssl ecparam -name prime256v1 -genkey -noout 2>/dev/null | openssl pkey -out "
		 "%s && "
		 "openssl pkey -in %s -pubout -out %s",
		 priv, priv, pub);
	if (system(cmd) != 0)
		return -1;
	setenv("TH_JWT_ALG", "ES256", 1);
	setenv("TH_JWT_PUBLIC_KEY", pub, 1);
	setenv("TH_JWT_PRIVATE_KEY", priv, 1);
	setenv("TH_JWT_ISSUER", "townhall-test", 1);
	setenv("TH_ACCESS_TTL", "60", 1);
	unsetenv("TH_VAR_DIR");
	if (token_init() < 0 || token_init_signer() < 0)
		return -1;
	arena_init(&arena);
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	arena_free(&arena);
	tokcache_close();
	token_close();
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static enum th_err verify(const char *tok, struct token_claims *c)
{
	return tokcache_verify(tok, strlen(tok), c);
}

static void test_hit_still_checks_revocation(void **state)
{
	struct token_claims c;
	struct tokcache_stats st;
	const char *tok = token_issue(&arena, 7, 70);
	unsigned long before;

	(void)state;
	assert_non_null(tok);
	assert_int_equal(tokcache_init(64, fake_revoked), 0);
	revoked_sid = 0;
	store_down = 0;
	assert_int_equal(verify(tok, &c), TH_OK);
	assert_int_equal(c.user_id, 7);
	assert_int_equal(c.session_id, 70);
	memset(&c, 0, sizeof(c));
	before = asked;
	assert_int_equal(verify(tok, &c), TH_OK);
	assert_int_equal(c.user_id, 7);
	assert_int_equal(asked, before + 1); /* asked on the hit too */
	tokcache_stats(&st);
	assert_int_equal(st.misses, 1);
	assert_int_equal(st.hits, 1);
	assert_int_equal(st.used, 1);
	/* revoked after it was cached: refused at once */
	revoked_sid = 70;
	assert_int_equal(verify(tok, &c), TH_EUNAUTHORIZED);
	/* the store cannot decide: not let through */
	revoked_sid = 0;
	store_down = 1;
	assert_int_equal(verify(tok, &c), TH_EUNAVAILABLE);
	store_down = 0;
	assert_int_equal(verify(tok, &c), TH_OK);
}

static void test_altered_token_not_served(void **state)
{
	struct token_claims c;
	struct tokcache_stats st;
	const char *tok = token_issue(&arena, 8, 80);
	char *bad;
	size_t n;

	(void)state;
	assert_int_equal(tokcache_init(64, fake_revoked), 0);
	assert_int_equal(verify(tok, &c), TH_OK);
	n = strlen(tok);
	bad = strdup(tok);
	assert_non_null(bad);
	/* the last signature character changed, then the payload: each is
	 * another key, verified, and refused */
	bad[n - 2] = bad[n - 2] == 'A' ? 'B' : 'A';
	assert_int_equal(verify(bad, &c), TH_EUNAUTHORIZED);
	memcpy(bad, tok, n);
	bad[strchr(tok, '.') - tok + 3] ^= 1;
	assert_int_equal(verify(bad, &c), TH_EUNAUTHORIZED);
	/* a prefix of a cached token is not it */
	assert_int_equal(tokcache_verify(tok, n - 1, &c), TH_EUNAUTHORIZED);
	assert_int_equal(tokcache_verify(tok, 0, &c), TH_EUNAUTHORIZED);
	tokcache_stats(&st);
	assert_int_equal(st.used, 1); /* refusals are not cached */
	free(bad);
}

static void test_bounded(void **state)
{
	struct token_claims c;
	struct tokcache_stats st;
	int i;

	(void)state;
	assert_int_equal(tokcache_init(16, fake_revoked), 0);
	for (i = 0; i < 100; i++) {
		const char *tok = token_issue(&arena, 100 + i, 1000 + i);

		assert_non_null(tok);
		assert_int_equal(verify(tok, &c), TH_OK);
		assert_int_equal(c.user_id, 100 + i);
	}
	tokcache_stats(&st);
	assert_int_equal(st.entries, 16);
	assert_true(st.used <= 16);
	assert_int_equal(st.used + st.evictions, 100);
	assert_int_equal(st.misses, 100);
}

/* An entry lives until the token's exp, not longer. */
static void test_expired_entry_refused(void **state)
{
	struct token_claims c;
	const char *tok;

	(void)state;
	setenv("TH_ACCESS_TTL", "1", 1);
	token_close();
	assert_int_equal(token_init(), 0);
	assert_int_equal(token_init_signer(), 0);
	assert_int_equal(tokcache_init(64, fake_revoked), 0);
	tok = token_issue(&arena, 9, 90);
	assert_non_null(tok);
	assert_int_equal(verify(tok, &c), TH_OK);
	sleep(2);
	assert_int_equal(verify(tok, &c), TH_EUNAUTHORIZED);
	assert_int_equal(verify(tok, &c), TH_EUNAUTHORIZED);
	setenv("TH_ACCESS_TTL", "60", 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hit_still_checks_revocation),
		cmocka_unit_test(test_altered_token_not_served),
		cmocka_unit_test(test_bounded),
		cmocka_unit_test(test_expired_entry_refused),
	};

	return cmocka_run_group_tests_name("tokcache", tests, setup, teardown);
}
