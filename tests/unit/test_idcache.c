/* Unit tests for idcache: the per-worker cache behind GET /api/auth/me. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "idcache.h"

static void assert_value(struct idcache *c, int64_t id, uint64_t now, const char *want)
{
	size_t len = 0;
	const char *v = idcache_get(c, id, now, &len);

	assert_non_null(v);
	assert_int_equal(len, strlen(want));
	assert_memory_equal(v, want, len);
}

static void test_bad_arguments(void **state)
{
	(void)state;
	assert_null(idcache_new(0, 1000));
	assert_null(idcache_new(IDCACHE_MAX_SLOTS + 1, 1000));
	assert_null(idcache_new(4, 0));
	assert_null(idcache_new(4, 3600001));
	idcache_free(NULL);
}

static void test_get_put_expiry(void **state)
{
	struct idcache *c = idcache_new(8, 100);
	size_t len = 0;

	(void)state;
	assert_non_null(c);
	assert_null(idcache_get(c, 7, 1000, &len));
	assert_int_equal(idcache_put(c, 7, 1000, "seven", 5), 0);
	assert_value(c, 7, 1000, "seven");
	assert_value(c, 7, 1099, "seven");
	/* ttl_ms after storing, the entry is gone, and stays gone */
	assert_null(idcache_get(c, 7, 1100, &len));
	assert_null(idcache_get(c, 7, 1000, &len));
	/* a clock behind the store time does not make an entry fresh for ever */
	assert_int_equal(idcache_put(c, 7, 5000, "seven", 5), 0);
	assert_null(idcache_get(c, 7, 4999, &len));
	/* ids <= 0 are never stored nor found */
	assert_int_equal(idcache_put(c, 0, 1000, "zero", 4), -1);
	assert_int_equal(idcache_put(c, -3, 1000, "neg", 3), -1);
	assert_null(idcache_get(c, 0, 1000, &len));
	assert_null(idcache_get(c, -3, 1000, &len));
	/* replacing a value */
	assert_int_equal(idcache_put(c, 7, 6000, "seven", 5), 0);
	assert_int_equal(idcache_put(c, 7, 6000, "SEVEN!", 6), 0);
	assert_value(c, 7, 6001, "SEVEN!");
	idcache_forget(c, 7);
	assert_null(idcache_get(c, 7, 6001, &len));
	idcache_forget(c, 7); /* twice is fine */
	idcache_free(c);
}

/* One slot: every id collides.  The slot must answer only for the id it was
 * filled for, never hand one user's row to another. */
static void test_collisions_never_cross(void **state)
{
	struct idcache *c = idcache_new(1, 60000);
	char want[32];
	size_t len = 0;
	int64_t id;

	(void)state;
	assert_non_null(c);
	assert_int_equal(idcache_put(c, 1, 10, "user-1", 6), 0);
	assert_value(c, 1, 10, "user-1");
	assert_null(idcache_get(c, 2, 10, &len));
	assert_int_equal(idcache_put(c, 2, 10, "user-2", 6), 0);
	assert_null(idcache_get(c, 1, 10, &len)); /* evicted, not answered with 2's */
	assert_value(c, 2, 10, "user-2");
	/* forgetting another id of the slot leaves the holder alone */
	idcache_forget(c, 1);
	assert_value(c, 2, 10, "user-2");
	idcache_free(c);

	/* many ids over a few slots: whatever is found is the id's own value */
	c = idcache_new(7, 60000);
	assert_non_null(c);
	for (id = 1; id <= 200; id++) {
		snprintf(want, sizeof(want), "user-%lld", (long long)id);
		assert_int_equal(idcache_put(c, id, 10, want, strlen(want)), 0);
	}
	for (id = 1; id <= 200; id++) {
		const char *v = idcache_get(c, id, 10, &len);

		snprintf(want, sizeof(want), "user-%lld", (long long)id);
		if (v) {
			assert_int_equal(len, strlen(want));
			assert_memory_equal(v, want, len);
		}
	}
	/* the last ids stored are all still there unless a later one took the slot */
	assert_value(c, 200, 10, "user-200");
	idcache_free(c);
}

static void test_value_bound(void **state)
{
	static char big[IDCACHE_VALUE_MAX + 1];
	struct idcache *c = idcache_new(4, 60000);
	size_t len = 0;

	(void)state;
	assert_non_null(c);
	memset(big, 'x', sizeof(big));
	assert_int_equal(idcache_put(c, 9, 10, big, IDCACHE_VALUE_MAX), 0);
	assert_non_null(idcache_get(c, 9, 10, &len));
	assert_int_equal(len, IDCACHE_VALUE_MAX);
	/* too long: refused, and the older value of that id is dropped, so a
	 * changed row never keeps being served from its previous version */
	assert_int_equal(idcache_put(c, 9, 20, big, IDCACHE_VALUE_MAX + 1), -1);
	assert_null(idcache_get(c, 9, 20, &len));
	idcache_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bad_arguments),
		cmocka_unit_test(test_get_put_expiry),
		cmocka_unit_test(test_collisions_never_cross),
		cmocka_unit_test(test_value_bound),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
