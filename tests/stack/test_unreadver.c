/* Tests of lib/unreadver against the stack's real Redis: batches larger than
 * one EVALSHA (a post that notifies hundreds of members bumps them all),
 * reads of many keys, the list the triggers of migration 0040 fill, which
 * outbox events bump what, and a missing version read as a fresh one.
 * tests/integration/run runs this with TH_REDIS_* set. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache.h"
#include "unreadver.h"

#define N_USERS 300 /* over UNREADVER_BATCH_MAX and the old 64-argument bound */

static int64_t base; /* ids of this run: no other test's keys */

static int setup(void **state)
{
	(void)state;
	if (!getenv("TH_REDIS_PORT")) {
		fprintf(stderr, "TH_REDIS_PORT must point at a running stack\n");
		return -1;
	}
	base = 900000000 + (int64_t)getpid() * 1000;
	return cache_init(getenv("TH_REDIS_HOST") ? getenv("TH_REDIS_HOST") : "127.0.0.1",
			  atoi(getenv("TH_REDIS_PORT")), 250);
}

static int teardown(void **state)
{
	(void)state;
	cache_close();
	return 0;
}

/* The current value of one version key (0: missing). */
static long long version(char kind, int64_t id)
{
	char k[UNREADVER_KEY_MAX];
	const char *argv[] = {"GET", k};
	struct cache_reply *r;
	long long v = 0;

	unreadver_key(k, kind, id);
	r = cache_cmd(2, argv, NULL);
	assert_non_null(r);
	if (cache_reply_type(r) == CACHE_STR)
		v = atoll(cache_reply_str(r, NULL));
	cache_reply_free(r);
	return v;
}

static void set_version(char kind, int64_t id, long long v)
{
	char k[UNREADVER_KEY_MAX], s[24];
	const char *argv[] = {"SET", k, s};

	unreadver_key(k, kind, id);
	snprintf(s, sizeof(s), "%lld", v);
	cache_reply_free(cache_cmd(3, argv, NULL));
}

static void test_batch_larger_than_one_script(void **state)
{
	static struct unreadver_batch b;
	static long long before[N_USERS];

	(void)state;
	for (int i = 0; i < N_USERS; i++) {
		set_version('u', base + i, 1000 + i);
		before[i] = 1000 + i;
	}
	for (int i = 0; i < N_USERS; i++)
		unreadver_add_user(&b, base + i);
	unreadver_flush(&b);
	assert_int_equal(b.n, 0);
	for (int i = 0; i < N_USERS; i++)
		assert_int_equal(version('u', base + i), before[i] + 1);
}

static void test_read_many_and_missing(void **state)
{
	static char keys[UNREADVER_BATCH_MAX][UNREADVER_KEY_MAX];
	const char *kp[UNREADVER_BATCH_MAX];
	static char out[UNREADVER_BATCH_MAX * 21 + 1];
	char *p;
	int n = 0;

	(void)state;
	for (int i = 0; i < UNREADVER_BATCH_MAX; i++) {
		unreadver_key(keys[i], 'u', base + i);
		kp[i] = keys[i];
	}
	/* a key nobody made: read as a fresh version (the clock in
	 * microseconds), and set, so the next read agrees */
	kp[UNREADVER_BATCH_MAX - 1] = "th:uv:{v}:u999999999999";
	{
		const char *del[] = {"DEL", kp[UNREADVER_BATCH_MAX - 1]};

		cache_reply_free(cache_cmd(2, del, NULL));
	}
	assert_int_equal(unreadver_read(kp, UNREADVER_BATCH_MAX, out, sizeof(out)), 0);
	for (p = out; p; p = strchr(p, ','), p = p ? p + 1 : NULL, n++) {
		long long v = atoll(p);

		if (n < UNREADVER_BATCH_MAX - 1)
			assert_int_equal(v, version('u', base + n));
		else
			assert_true(v > 1000000000000000LL); /* after 2001 in µs */
	}
	assert_int_equal(n, UNREADVER_BATCH_MAX);
	assert_true(version('u', 999999999999LL) > 1000000000000000LL);
	/* too small an output: -1, not a cut list */
	assert_int_equal(unreadver_read(kp, UNREADVER_BATCH_MAX, out, 64), -1);
}

static void test_bump_list(void **state)
{
	long long u = version('u', base), c;

	(void)state;
	set_version('c', base + 7, 50);
	/* what migration 0040's triggers write, with junk a list never has */
	unreadver_bump_list("u900000000,x12,,c");
	unreadver_bump_list("");
	{
		char list[64];

		snprintf(list, sizeof(list), "u%lld,c%lld,u%lld", (long long)base,
			 (long long)(base + 7), (long long)base);
		unreadver_bump_list(list);
	}
	c = version('c', base + 7);
	assert_int_equal(c, 51);
	assert_int_equal(version('u', base), u + 2); /* named twice, apart: bumped twice */
}

static void test_events(void **state)
{
	static struct unreadver_batch b;
	char ev[256];
	long long u1, u2, u3, c1;

	(void)state;
	u1 = version('u', base + 1);
	u2 = version('u', base + 2);
	u3 = version('u', base + 3);
	set_version('c', base + 9, 10);
	c1 = 10;
	/* a notification: its user */
	snprintf(ev, sizeof(ev), "{\"type\":\"notification\",\"user_id\":%lld}",
		 (long long)(base + 1));
	unreadver_add_event(&b, ev);
	/* a DM's members, and a community's channel activity */
	snprintf(ev, sizeof(ev), "{\"type\":\"dm_created\",\"inbox\":[%lld,%lld]}",
		 (long long)(base + 2), (long long)(base + 3));
	unreadver_add_event(&b, ev);
	snprintf(ev, sizeof(ev),
		 "{\"type\":\"channel_activity\",\"community_id\":%lld,\"channel_id\":1}",
		 (long long)(base + 9));
	unreadver_add_event(&b, ev);
	/* no answer depends on these: nothing */
	snprintf(ev, sizeof(ev),
		 "{\"type\":\"post_created\",\"community_id\":%lld,\"author_id\":%lld}",
		 (long long)(base + 9), (long long)(base + 1));
	unreadver_add_event(&b, ev);
	snprintf(ev, sizeof(ev),
		 "{\"type\":\"call_invite\",\"community_id\":%lld,\"inbox\":[%lld]}",
		 (long long)(base + 9), (long long)(base + 1));
	unreadver_add_event(&b, ev);
	unreadver_add_event(&b, "not json");
	unreadver_add_event(&b, "{\"user_id\":5}"); /* no type */
	assert_int_equal(b.n, 4);
	unreadver_flush(&b);
	assert_int_equal(version('u', base + 1), u1 + 1);
	assert_int_equal(version('u', base + 2), u2 + 1);
	assert_int_equal(version('u', base + 3), u3 + 1);
	assert_int_equal(version('c', base + 9), c1 + 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_batch_larger_than_one_script),
		cmocka_unit_test(test_read_many_and_missing),
		cmocka_unit_test(test_bump_list),
		cmocka_unit_test(test_events),
	};

	return cmocka_run_group_tests_name("unreadver (stack)", tests, setup, teardown);
}
