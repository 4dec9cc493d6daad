/* Unit tests of the front's timing wheel (realtime-bridge/front/tw.c): a
 * node comes back in the tick of its time and not before, once; cancel and
 * re-arm move it; times past the span and gaps of more than a turn; and the
 * owner arming or cancelling nodes still on the due list while it takes
 * them (what conn_sweep does when one timeout frees an edge slot). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tw.h"

#define TICK 500

/* every node due by now, in any order: a bit per index of nodes[] */
static unsigned take(struct tw *w, struct tw_node *nodes, int64_t now)
{
	struct tw_node *n;
	unsigned got = 0;

	tw_expire(w, now);
	while ((n = tw_next(w))) {
		assert_int_equal(n->where, -1);
		got |= 1u << (n - nodes);
	}
	return got;
}

static void test_in_its_tick(void **state)
{
	struct tw w;
	struct tw_node n[3];

	(void)state;
	tw_init(&w, TICK, 10000);
	for (int i = 0; i < 3; i++)
		tw_node_init(&n[i]);
	tw_arm(&w, &n[0], 10700); /* tick 21 */
	tw_arm(&w, &n[1], 12000); /* tick 24 */
	tw_arm(&w, &n[2], 9000);  /* already past: the next expiry */
	assert_int_equal(take(&w, n, 10100), 1u << 2);
	assert_int_equal(take(&w, n, 10499), 0);
	assert_int_equal(take(&w, n, 10500), 1u << 0); /* its tick begins */
	assert_int_equal(take(&w, n, 11999), 0);
	assert_int_equal(take(&w, n, 12600), 1u << 1);
	/* each came once */
	assert_int_equal(take(&w, n, 20000), 0);
}

static void test_cancel_and_rearm(void **state)
{
	struct tw w;
	struct tw_node n[2];

	(void)state;
	tw_init(&w, TICK, 0);
	tw_node_init(&n[0]);
	tw_node_init(&n[1]);
	tw_cancel(&w, &n[0]); /* not armed: nothing */
	tw_arm(&w, &n[0], 1000);
	tw_arm(&w, &n[1], 1000);
	tw_cancel(&w, &n[0]);
	assert_int_equal(n[0].where, -1);
	tw_arm(&w, &n[1], 5000); /* moved later */
	assert_int_equal(take(&w, n, 2000), 0);
	tw_arm(&w, &n[1], 2500); /* and sooner */
	assert_int_equal(take(&w, n, 3000), 1u << 1);
	assert_int_equal(take(&w, n, 6000), 0);
}

static void test_past_the_span(void **state)
{
	struct tw w;
	struct tw_node n[1];
	int64_t due = (int64_t)TICK * TW_SLOTS * 2 + 1234, now = 0, first = -1;
	int visits = 0;

	(void)state;
	tw_init(&w, TICK, 0);
	tw_node_init(&n[0]);
	tw_arm(&w, &n[0], due);
	/* the owner's part: back early once a turn, armed again, until its time */
	for (now = 0; now <= due + TICK; now += TICK) {
		if (take(&w, n, now)) {
			visits++;
			if (now < due)
				tw_arm(&w, &n[0], due);
			else if (first < 0)
				first = now;
		}
	}
	assert_true(first >= due && first < due + TICK);
	/* two early turns; its tick, which begins before its time; the next */
	assert_int_equal(visits, 4);
}

static void test_gap_of_turns(void **state)
{
	struct tw w;
	struct tw_node n[4];

	(void)state;
	tw_init(&w, TICK, 0);
	for (int i = 0; i < 4; i++) {
		tw_node_init(&n[i]);
		tw_arm(&w, &n[i], 1000 + i * 100000);
	}
	/* a worker stopped for ten turns finds every one due, once */
	assert_int_equal(take(&w, n, (int64_t)TICK * TW_SLOTS * 10), 0xfu);
	assert_int_equal(take(&w, n, (int64_t)TICK * TW_SLOTS * 12), 0);
}

static void test_owner_changes_due_list(void **state)
{
	struct tw w;
	struct tw_node n[3], *x;
	int rearmed = -1;

	(void)state;
	tw_init(&w, TICK, 0);
	for (int i = 0; i < 3; i++) {
		tw_node_init(&n[i]);
		tw_arm(&w, &n[i], 100);
	}
	tw_expire(&w, 600);
	x = tw_next(&w);
	assert_non_null(x);
	/* while handling x, the owner re-arms one still due and cancels the other */
	for (int i = 0; i < 3; i++) {
		if (&n[i] == x)
			continue;
		assert_int_equal(n[i].where, TW_SLOTS);
		if (rearmed < 0) {
			tw_arm(&w, &n[i], 5000);
			rearmed = i;
		} else {
			tw_cancel(&w, &n[i]);
			assert_int_equal(n[i].where, -1);
		}
	}
	assert_null(tw_next(&w)); /* neither comes back now */
	assert_int_equal(take(&w, n, 4999), 0);
	tw_expire(&w, 5600);
	x = tw_next(&w);
	assert_ptr_equal(x, &n[rearmed]);
	assert_int_equal(x->where, -1);
	assert_null(tw_next(&w));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_in_its_tick),
		cmocka_unit_test(test_cancel_and_rearm),
		cmocka_unit_test(test_past_the_span),
		cmocka_unit_test(test_gap_of_turns),
		cmocka_unit_test(test_owner_changes_due_list),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
