/* Unit tests of th-bridge's batching rules: when a chat batch goes to
 * PostgreSQL (realtime-bridge/bridge/linger.c), which outbox events a
 * later one of the relay's batch supersedes (supersede.c), and how a batch
 * that failed is tried again in parts (split.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <json-c/json.h>
#include <stdint.h>
#include <string.h>

#include "linger.h"
#include "split.h"
#include "supersede.h"

#define MS 1000ull /* µs */

static const struct linger_rule rule = {.wait_ms = 5, .linger_ms = 50, .max = 1000};

static void test_lone_message_waits_the_pause(void **state)
{
	(void)state;
	/* one message at t=100 ms: due 5 ms later, not before */
	assert_int_equal(linger_left_ms(&rule, 1, 100 * MS, 100 * MS, 100 * MS), 5);
	assert_int_equal(linger_left_ms(&rule, 1, 100 * MS, 100 * MS, 103 * MS), 2);
	assert_int_equal(linger_left_ms(&rule, 1, 100 * MS, 100 * MS, 105 * MS), 0);
}

static void test_stream_lingers_to_the_cap(void **state)
{
	(void)state;
	/* a message every ms since t=0: the pause never comes; the batch stays
	 * open until 50 ms after its first message */
	assert_int_equal(linger_left_ms(&rule, 30, 0, 29 * MS, 30 * MS), 4);
	assert_int_equal(linger_left_ms(&rule, 48, 0, 47 * MS, 48 * MS), 2);
	assert_int_equal(linger_left_ms(&rule, 50, 0, 49 * MS, 50 * MS), 0);
	/* a pause of 5 ms closes it early */
	assert_int_equal(linger_left_ms(&rule, 20, 0, 19 * MS, 24 * MS), 0);
}

static void test_full_or_empty_is_due(void **state)
{
	(void)state;
	assert_int_equal(linger_left_ms(&rule, 1000, 0, 1 * MS, 1 * MS), 0);
	assert_int_equal(linger_left_ms(&rule, 1200, 0, 1 * MS, 1 * MS), 0);
	assert_int_equal(linger_left_ms(&rule, 0, 0, 0, 0), 0);
	/* a clock that reads earlier than a stamp waits, never overflows */
	assert_int_equal(linger_left_ms(&rule, 1, 10 * MS, 10 * MS, 9 * MS), 5);
}

static void test_no_wait_sends_at_once(void **state)
{
	const struct linger_rule now = {.wait_ms = 0, .linger_ms = 0, .max = 1000};

	(void)state;
	assert_int_equal(linger_left_ms(&now, 3, 0, 0, 0), 0);
}

static struct supersede_key key_of(const char *json)
{
	struct json_object *o = json_tokener_parse(json);
	struct supersede_key k = supersede_key_of(o);

	json_object_put(o);
	return k;
}

static void test_later_unread_and_activity_supersede(void **state)
{
	const char *ev[] = {
		"{\"type\":\"unread\",\"user_id\":3,\"channel_id\":5,\"read_seq\":7}",
		"{\"type\":\"channel_activity\",\"community_id\":1,\"channel_id\":5,\"last_seq\":"
		"7}",
		"{\"type\":\"unread\",\"user_id\":4,\"channel_id\":5,\"read_seq\":8}",
		"{\"type\":\"unread\",\"user_id\":3,\"channel_id\":6,\"read_seq\":2}",
		"{\"type\":\"channel_activity\",\"community_id\":1,\"channel_id\":5,\"last_seq\":"
		"9}",
		"{\"type\":\"unread\",\"user_id\":3,\"channel_id\":5,\"read_seq\":9}",
		"{\"type\":\"notifications_read\",\"user_id\":3,\"all\":true}",
		"{\"type\":\"notifications_read\",\"user_id\":3,\"all\":true}",
	};
	enum { N = sizeof(ev) / sizeof(ev[0]) };
	struct supersede_key k[N];
	unsigned char old[N];
	const unsigned char want[N] = {1, 1, 0, 0, 0, 0, 0, 0};

	(void)state;
	for (int i = 0; i < N; i++)
		k[i] = key_of(ev[i]);
	memset(old, 0xff, sizeof(old));
	supersede_mark(k, N, old);
	assert_memory_equal(old, want, N);
}

static void test_unkeyed_events_are_kept(void **state)
{
	const char *ev[] = {
		"not json",
		"{\"type\":\"unread\",\"user_id\":3}",
		"{\"type\":\"unread\",\"user_id\":3}",
		"{\"type\":\"unread\",\"user_id\":3,\"channel_id\":5,\"inbox\":[4]}",
		"{\"type\":\"unread\",\"user_id\":3,\"channel_id\":5,\"inbox\":[4]}",
		"{\"type\":\"unread\",\"user_id\":\"3\",\"channel_id\":5}",
		"{\"type\":\"unread\",\"user_id\":\"3\",\"channel_id\":5}",
		"{\"type\":7,\"user_id\":3,\"channel_id\":5}",
		"{\"type\":7,\"user_id\":3,\"channel_id\":5}",
		"{\"type\":\"channel_activity\",\"community_id\":1,\"channel_id\":5,\"user_id\":3}",
		"{\"type\":\"channel_activity\",\"community_id\":1,\"channel_id\":5,\"user_id\":3}",
		"{\"type\":null,\"user_id\":3,\"channel_id\":5}",
		"{\"type\":null,\"user_id\":3,\"channel_id\":5}",
	};
	enum { N = sizeof(ev) / sizeof(ev[0]) };
	struct supersede_key k[N];
	unsigned char old[N];

	(void)state;
	for (int i = 0; i < N; i++)
		k[i] = key_of(ev[i]);
	supersede_mark(k, N, old);
	for (int i = 0; i < N; i++)
		assert_int_equal(old[i], 0);
	assert_int_equal(supersede_key_of(NULL).kind, 0);
}

/* A batch of n in which the messages poisoned[i] fail (a part holding one
 * fails whole): every message ends stored or quarantined exactly once, the
 * poisoned ones and only they quarantined, in order (each part starts where
 * the last settled one ended), within a bounded number of sends. */
static void run_split(size_t n, const unsigned char *poisoned, size_t npoisoned)
{
	struct split s;
	size_t next = 0, sends = 0, quarantined = 0, bound = 1;

	for (size_t k = n; k > 1; k /= 2)
		bound += 2 * npoisoned + 1;
	split_init(&s, n);
	for (;;) {
		int bad = 0;

		assert_int_equal(s.lo, next); /* in order, nothing skipped or repeated */
		assert_true(s.hi > s.lo && s.hi <= n);
		for (size_t i = s.lo; i < s.hi; i++)
			bad |= poisoned[i];
		sends++;
		if (bad && split_halve(&s))
			continue;
		if (bad) {
			assert_int_equal(s.hi - s.lo, 1);
			quarantined++;
		}
		next = s.hi;
		if (!split_next(&s))
			break;
	}
	assert_int_equal(next, n);
	assert_int_equal(quarantined, npoisoned);
	assert_true(sends <= bound + npoisoned);
}

static void test_split_quarantines_only_the_poisoned(void **state)
{
	static unsigned char poisoned[6000];
	static const size_t sizes[] = {1, 2, 3, 7, 45, 64, 1000, 6000};

	(void)state;
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		size_t n = sizes[k];

		/* none (the batch stores at once), each single one, the first and
		 * the last, every seventh */
		memset(poisoned, 0, n);
		run_split(n, poisoned, 0);
		for (size_t p = 0; p < n && p < 70; p++) {
			poisoned[p] = 1;
			run_split(n, poisoned, 1);
			poisoned[p] = 0;
		}
		poisoned[0] = 1;
		poisoned[n > 1 ? n - 1 : 0] = 1;
		run_split(n, poisoned, n > 1 ? 2 : 1);
		memset(poisoned, 0, n);
		size_t m = 0;

		for (size_t p = 0; p < n; p += 7, m++)
			poisoned[p] = 1;
		run_split(n, poisoned, m);
		memset(poisoned, 0, n);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lone_message_waits_the_pause),
		cmocka_unit_test(test_stream_lingers_to_the_cap),
		cmocka_unit_test(test_full_or_empty_is_due),
		cmocka_unit_test(test_no_wait_sends_at_once),
		cmocka_unit_test(test_later_unread_and_activity_supersede),
		cmocka_unit_test(test_unkeyed_events_are_kept),
		cmocka_unit_test(test_split_quarantines_only_the_poisoned),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
