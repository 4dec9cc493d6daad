/* Unit tests for the small modules: arena, config, err, log_clean. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "config.h"
#include "err.h"
#include "log.h"

static void test_arena(void **state)
{
	struct arena a;
	char *s, *big;
	int *p;

	(void)state;
	arena_init(&a);
	p = arena_alloc(&a, sizeof(int) * 4);
	assert_non_null(p);
	assert_int_equal((uintptr_t)p % 16, 0);
	assert_int_equal(p[3], 0); /* zeroed */
	s = arena_printf(&a, "%s-%d", "x", 42);
	assert_string_equal(s, "x-42");
	big = arena_alloc(&a, 100000); /* larger than a chunk */
	assert_non_null(big);
	memset(big, 1, 100000);
	assert_true(a.total >= 100000);
	arena_reset(&a);
	assert_int_equal(a.total, 0);
	s = arena_strndup(&a, "hello", 3);
	assert_string_equal(s, "hel");
	assert_null(arena_alloc(&a, SIZE_MAX - 4));
	arena_free(&a);
	arena_free(&a); /* twice is safe */
}

/* cleanups run last in, first out, once, at reset and at free */
static char order[8];
static size_t norder;

static void note(void *p)
{
	if (norder < sizeof(order) - 1)
		order[norder++] = *(const char *)p;
}

static void test_arena_defer(void **state)
{
	struct arena a;
	static const char x = 'x', y = 'y', z = 'z';
	char *heap;

	(void)state;
	arena_init(&a);
	norder = 0;
	assert_int_equal(arena_defer(&a, note, (void *)&x), 0);
	assert_int_equal(arena_defer(&a, note, (void *)&y), 0);
	assert_int_equal(norder, 0);
	arena_reset(&a);
	assert_int_equal(norder, 2);
	assert_memory_equal(order, "yx", 2);
	arena_reset(&a); /* already run: not again */
	assert_int_equal(norder, 2);
	assert_int_equal(arena_defer(&a, note, (void *)&z), 0);
	/* a heap block handed over: freed by the arena (ASan's leak check) */
	heap = malloc(32);
	assert_non_null(heap);
	assert_int_equal(arena_defer(&a, free, heap), 0);
	arena_free(&a);
	assert_int_equal(norder, 3);
	assert_int_equal(order[2], 'z');
	arena_free(&a);
	assert_int_equal(norder, 3);

	/* released early: runs at once, once, and the others keep their turn */
	norder = 0;
	assert_int_equal(arena_defer(&a, note, (void *)&x), 0);
	assert_int_equal(arena_defer(&a, note, (void *)&y), 0);
	assert_int_equal(arena_defer(&a, note, (void *)&z), 0);
	assert_int_equal(arena_release(&a, (void *)&y), 0);
	assert_int_equal(norder, 1);
	assert_int_equal(order[0], 'y');
	assert_int_equal(arena_release(&a, (void *)&y), -1); /* not handed over any more */
	assert_int_equal(norder, 1);
	arena_reset(&a);
	assert_int_equal(norder, 3);
	assert_memory_equal(order, "yzx", 3);
	arena_free(&a);
}

static void test_config(void **state)
{
	long long v;
	bool b;

	(void)state;
	assert_int_equal(cfg_parse_int("42", 0, 100, &v), 0);
	assert_int_equal(v, 42);
	assert_int_equal(cfg_parse_int("-5", -10, 10, &v), 0);
	assert_int_equal(v, -5);
	assert_int_equal(cfg_parse_int("-5", 0, 10, &v), -1);
	assert_int_equal(cfg_parse_int("101", 0, 100, &v), -1);
	assert_int_equal(cfg_parse_int("4x", 0, 100, &v), -1);
	assert_int_equal(cfg_parse_int("", 0, 100, &v), -1);
	assert_int_equal(cfg_parse_int(" 4", 0, 100, &v), -1);
	assert_int_equal(cfg_parse_int("99999999999999999999", 0, INT64_MAX, &v), -1);
	assert_int_equal(cfg_parse_bool("TRUE", &b), 0);
	assert_true(b);
	assert_int_equal(cfg_parse_bool("off", &b), 0);
	assert_false(b);
	assert_int_equal(cfg_parse_bool("maybe", &b), -1);

	setenv("TH_UNIT_X", "12", 1);
	assert_int_equal(cfg_int("TH_UNIT_X", 3, 0, 100), 12);
	unsetenv("TH_UNIT_X");
	assert_int_equal(cfg_int("TH_UNIT_X", 3, 0, 100), 3);
	setenv("TH_UNIT_X", "", 1);
	assert_string_equal(cfg_str("TH_UNIT_X", "d"), "d");
}

static void test_err(void **state)
{
	(void)state;
	assert_int_equal(th_err_status(TH_EBADJSON), 400);
	assert_string_equal(th_err_code(TH_EBADJSON), "bad_json");
	assert_int_equal(th_err_status(TH_EMETHOD), 405);
	assert_string_equal(th_err_code(TH_EUNSUPPORTED), "unsupported_media_type");
	assert_int_equal(th_err_status(TH_EUNAVAILABLE), 503);
	assert_int_equal(th_err_status(TH_ETOTP), 401);
	assert_string_equal(th_err_code(TH_ETOTP), "totp_required");
	assert_int_equal(th_err_status(TH_ESUSPENDED), 403);
	assert_string_equal(th_err_code(TH_ESUSPENDED), "suspended");
	assert_int_equal(th_err_status((enum th_err)999), 500);
	for (int e = 0; e < TH_ERR_COUNT; e++) {
		assert_non_null(th_err_code((enum th_err)e));
		assert_true(th_err_status((enum th_err)e) >= 200);
	}
}

static void test_log_clean(void **state)
{
	char buf[8];

	(void)state;
	assert_string_equal(log_clean(buf, sizeof(buf), "a\r\nb"), "a??b");
	assert_string_equal(log_clean(buf, sizeof(buf), "abcdefghij"), "abcd...");
	assert_string_equal(log_clean(buf, sizeof(buf), NULL), "-");
	assert_int_equal(log_parse_level("warn"), LOG_WARN);
	assert_int_equal(log_parse_level("loud"), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_arena),     cmocka_unit_test(test_arena_defer),
		cmocka_unit_test(test_config),    cmocka_unit_test(test_err),
		cmocka_unit_test(test_log_clean),
	};

	return cmocka_run_group_tests_name("base", tests, NULL, NULL);
}
