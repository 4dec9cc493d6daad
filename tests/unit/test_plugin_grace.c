/* Unit tests for the plugin's presence grace table (realtime-bridge/plugin/
 * grace.h): what lingers, what a reconnect takes, what is due when.  The
 * broker side (no "offline" for a reload, "offline" after the grace) is in
 * tests/integration/presence.test.mjs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "grace.h"

static int teardown(void **state)
{
	(void)state;
	grace_close();
	return 0;
}

static void test_linger_and_take(void **state)
{
	int64_t due[4];

	(void)state;
	assert_int_equal(grace_init(2000), 0);
	assert_int_equal(grace_hold(7, 1000), 1);
	/* one lingering connection a user: a second one leaves the count now */
	assert_int_equal(grace_hold(7, 1500), 0);
	assert_int_equal(grace_held(), 1);
	/* a reconnect takes its place once, and only while it lingers */
	assert_int_equal(grace_cancel(7), 1);
	assert_int_equal(grace_cancel(7), 0);
	assert_int_equal(grace_cancel(8), 0);
	assert_int_equal(grace_due(1000000, due, 4), 0);
}

static void test_due_in_time(void **state)
{
	int64_t due[2];

	(void)state;
	assert_int_equal(grace_init(2000), 0);
	assert_int_equal(grace_hold(1, 1000), 1); /* ends at 3000 */
	assert_int_equal(grace_hold(2, 1500), 1); /* 3500 */
	assert_int_equal(grace_hold(3, 1600), 1); /* 3600 */
	assert_int_equal(grace_due(2999, due, 2), 0);
	assert_int_equal(grace_due(3000, due, 2), 1);
	assert_int_equal(due[0], 1);
	/* the table is walked at most every 100 ms */
	assert_int_equal(grace_due(3099, due, 2), 0);
	/* at most max a call; the rest on the next one */
	assert_int_equal(grace_due(4000, due, 1), 1);
	assert_int_equal(grace_held(), 1);
	assert_int_equal(grace_due(4050, due, 2), 0);
	assert_int_equal(grace_due(4100, due, 2), 1);
	assert_int_equal(grace_held(), 0);
	/* a due user is gone: a reconnect counts as new */
	assert_int_equal(grace_cancel(1), 0);
}

static void test_no_grace(void **state)
{
	int64_t due[1];

	(void)state;
	assert_int_equal(grace_init(0), 0);
	assert_int_equal(grace_hold(5, 1000), 0);
	assert_int_equal(grace_cancel(5), 0);
	assert_int_equal(grace_due(999999, due, 1), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_linger_and_take, teardown),
		cmocka_unit_test_teardown(test_due_in_time, teardown),
		cmocka_unit_test_teardown(test_no_grace, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
