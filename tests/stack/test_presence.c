/* Tests of the plugin's presence module (lib/presence.c)
 * against the real Redis of a stack, with three brokers in one process.
 *
 * Each broker is a struct presence of its own (its own instance and lease);
 * they share the one Redis connection of lib/cache, as brokers share Redis.
 * The keys live under a prefix of this run (not th:presence), so the
 * stack's own brokers neither see nor reap these test brokers.
 * A "crash" is presence_close(p, 0): the broker stops renewing and never
 * touches Redis again.  Leases are short (LEASE_MS) so that the waits are.
 * tests/integration/run runs this with TH_REDIS_* set. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cache.h"
#include "mono.h"
#include "presence.h"

#define LEASE_MS 400
#define MAX_EVENTS 256

struct event {
	int broker;
	int64_t uid;
	int online;
};

static struct event events[MAX_EVENTS];
static int nevents;
static char prefix[48];
static int64_t uid_base;

static void record(int64_t uid, int online, void *arg)
{
	if (nevents < MAX_EVENTS)
		events[nevents++] = (struct event){(int)(intptr_t)arg, uid, online};
}

/* Announcements of uid (online 1/0) since the events were cleared. */
static int count(int64_t uid, int online)
{
	int n = 0;

	for (int i = 0; i < nevents; i++)
		n += events[i].uid == uid && events[i].online == online;
	return n;
}

static struct presence *broker(const char *id, int tag)
{
	struct presence_cfg cfg = {
		.broker_id = id,
		.lease_ms = LEASE_MS,
		.announce = record,
		.arg = (void *)(intptr_t)tag,
		.key_prefix = prefix,
	};
	struct presence *p = presence_open(&cfg);

	assert_non_null(p);
	presence_tick(p);
	assert_true(presence_instance(p)[0] != '\0'); /* registered */
	return p;
}

/* Ticks the given brokers for ms milliseconds. */
static void run_for(struct presence **b, int n, long ms)
{
	uint64_t end = mono_ms() + (uint64_t)ms;

	while (mono_ms() < end) {
		for (int i = 0; i < n; i++)
			if (b[i])
				presence_tick(b[i]);
		usleep(5000);
	}
}

/* Ticks until cond(uid) or the timeout; 1 when it came true. */
static int run_until(struct presence **b, int n, long timeout_ms, int (*cond)(int64_t), int64_t uid)
{
	uint64_t end = mono_ms() + (uint64_t)timeout_ms;

	while (mono_ms() < end) {
		for (int i = 0; i < n; i++)
			if (b[i])
				presence_tick(b[i]);
		if (cond(uid))
			return 1;
		usleep(5000);
	}
	return 0;
}

/* Total connections of uid in Redis, and the number of fields. */
static long long redis_total(int64_t uid, int *fields)
{
	char key[96];
	const char *argv[] = {"HGETALL", key};
	struct cache_reply *r;
	long long total = 0;

	snprintf(key, sizeof(key), "%s:{u%lld}", prefix, (long long)uid);
	r = cache_cmd(2, argv, NULL);
	assert_non_null(r);
	if (fields)
		*fields = (int)cache_reply_count(r) / 2;
	for (size_t i = 1; i < cache_reply_count(r); i += 2) {
		const char *f = cache_reply_str(cache_reply_elem(r, i - 1), NULL);

		/* "~<instance>": how many of its count linger */
		if (!f || f[0] != '~')
			total += cache_reply_int(cache_reply_elem(r, i));
	}
	cache_reply_free(r);
	return total;
}

static int offline_seen(int64_t uid)
{
	return count(uid, 0) > 0;
}
static int zero_in_redis(int64_t uid)
{
	return redis_total(uid, NULL) == 0;
}

static void redis_up(void)
{
	cache_close();
	assert_int_equal(cache_init(getenv("TH_REDIS_HOST") ? getenv("TH_REDIS_HOST") : "127.0.0.1",
				    atoi(getenv("TH_REDIS_PORT")), 250),
			 0);
}

static void redis_down(void)
{
	/* nothing listens on port 1: every call fails at once */
	cache_close();
	assert_int_equal(cache_init("127.0.0.1", 1, 50), 0);
}

static int setup(void **state)
{
	(void)state;
	if (!getenv("TH_REDIS_PORT")) {
		fprintf(stderr, "TH_REDIS_PORT must point at a running stack\n");
		return -1;
	}
	snprintf(prefix, sizeof(prefix), "th:presence-test%d", (int)getpid());
	uid_base = 1000000000LL + (int64_t)getpid() * 100;
	redis_up();
	return 0;
}

static int teardown(void **state)
{
	char pattern[64];
	const char *scan[] = {"KEYS", pattern};
	struct cache_reply *r;

	(void)state;
	redis_up();
	/* the test's keys only (a prefix of this run); a few dozen */
	snprintf(pattern, sizeof(pattern), "%s:*", prefix);
	r = cache_cmd(2, scan, NULL);
	for (size_t i = 0; r && i < cache_reply_count(r); i++) {
		const char *del[] = {"DEL", cache_reply_str(cache_reply_elem(r, i), NULL)};

		cache_reply_free(cache_cmd(2, del, NULL));
	}
	cache_reply_free(r);
	cache_close();
	return 0;
}

/* A user with tabs on two brokers: "online" once, at the first; "offline"
 * once, at the last; nothing in between. */
static void test_online_once_offline_at_last(void **state)
{
	struct presence *a = broker("ta", 1), *b = broker("tb", 2);
	int64_t u = uid_base + 1;

	(void)state;
	nevents = 0;
	assert_int_equal(presence_connect(a, u, 20), PRESENCE_OK);
	assert_int_equal(count(u, 1), 1);
	assert_int_equal(presence_connect(b, u, 20), PRESENCE_OK);
	assert_int_equal(presence_connect(b, u, 20), PRESENCE_OK);
	assert_int_equal(count(u, 1), 1);
	assert_int_equal(redis_total(u, NULL), 3);
	presence_disconnect(a, u);
	presence_disconnect(b, u);
	assert_int_equal(count(u, 0), 0);
	presence_disconnect(b, u);
	assert_int_equal(count(u, 0), 1);
	assert_int_equal(nevents, 2);
	assert_int_equal(redis_total(u, NULL), 0);
	/* back again: announced again */
	assert_int_equal(presence_connect(b, u, 20), PRESENCE_OK);
	assert_int_equal(count(u, 1), 2);
	presence_disconnect(b, u);
	presence_close(a, 1);
	presence_close(b, 1);
}

/* The connections-per-user limit counts every broker. */
static void test_limit_counts_every_broker(void **state)
{
	struct presence *a = broker("ta", 1), *b = broker("tb", 2);
	int64_t u = uid_base + 2;

	(void)state;
	assert_int_equal(presence_connect(a, u, 3), PRESENCE_OK);
	assert_int_equal(presence_connect(a, u, 3), PRESENCE_OK);
	assert_int_equal(presence_connect(b, u, 3), PRESENCE_OK);
	assert_int_equal(presence_connect(b, u, 3), PRESENCE_FULL);
	assert_int_equal(presence_connect(a, u, 3), PRESENCE_FULL);
	assert_int_equal(presence_local(b, u), 1);
	assert_int_equal(redis_total(u, NULL), 3);
	/* limit 0 (a takeover of one's own client id) is let through */
	assert_int_equal(presence_connect(b, u, 0), PRESENCE_OK);
	presence_disconnect(b, u);
	presence_disconnect(a, u);
	assert_int_equal(presence_connect(b, u, 3), PRESENCE_OK);
	for (int i = 0; i < 2; i++) {
		presence_disconnect(a, u);
		presence_disconnect(b, u);
	}
	assert_int_equal(redis_total(u, NULL), 0);
	presence_close(a, 1);
	presence_close(b, 1);
}

/* A lingering connection (the broker's presence grace) stays in the count,
 * so nobody sees the user leave, but not against the limit on other
 * brokers; a new connection taking its place is checked against the limit
 * (else the place, given elsewhere meanwhile, would be a 4th of 3). */
static void test_lingering_not_against_limit(void **state)
{
	struct presence *a = broker("ta", 1), *b = broker("tb", 2);
	int64_t u = uid_base + 3;
	int fields;

	(void)state;
	nevents = 0;
	assert_int_equal(presence_connect(a, u, 3), PRESENCE_OK);
	assert_int_equal(presence_connect(a, u, 3), PRESENCE_OK);
	assert_int_equal(presence_connect(b, u, 3), PRESENCE_OK);
	presence_linger(a, u); /* one of a's closed; it lingers */
	assert_int_equal(redis_total(u, &fields), 3);
	assert_int_equal(fields, 3);                              /* a, b and a's lingering one */
	assert_int_equal(presence_connect(b, u, 3), PRESENCE_OK); /* 3 live: 1 + 2 */
	assert_int_equal(presence_connect(b, u, 3), PRESENCE_FULL);
	/* its place is not free any more: the reconnect on a is refused */
	assert_int_equal(presence_unlinger(a, u, 3), PRESENCE_FULL);
	assert_int_equal(presence_connect(a, u, 3), PRESENCE_FULL);
	/* one of b's leaves: the reconnect on a takes the lingering place */
	presence_disconnect(b, u);
	assert_int_equal(presence_unlinger(a, u, 3), PRESENCE_OK);
	assert_int_equal(presence_connect(b, u, 3), PRESENCE_FULL);
	assert_int_equal(redis_total(u, NULL), 3);
	/* the grace of a lingering one ends: it leaves the count; offline
	 * only at the last */
	presence_linger(a, u);
	presence_linger_gone(a, u);
	assert_int_equal(presence_local(a, u), 1);
	presence_disconnect(b, u);
	presence_linger(a, u);
	assert_int_equal(count(u, 0), 0);
	presence_linger_gone(a, u);
	assert_int_equal(count(u, 0), 1);
	assert_int_equal(redis_total(u, NULL), 0);
	presence_close(a, 1);
	presence_close(b, 1);
}

/* A broker dies: after its lease a live broker removes its counts; its
 * users go offline unless they are connected elsewhere. */
static void test_dead_broker_reaped(void **state)
{
	struct presence *b[3] = {broker("ta", 1), broker("tb", 2), broker("tc", 3)};
	int64_t alone = uid_base + 3, both = uid_base + 4;
	int fields;

	(void)state;
	/* the reapers must have held their own lease for one lease first */
	run_for(b, 3, LEASE_MS + 100);
	assert_int_equal(presence_connect(b[0], alone, 20), PRESENCE_OK);
	assert_int_equal(presence_connect(b[0], both, 20), PRESENCE_OK);
	assert_int_equal(presence_connect(b[1], both, 20), PRESENCE_OK);
	nevents = 0;
	presence_close(b[0], 0); /* crash: no renewal, no cleanup */
	b[0] = NULL;
	/* before the lease ends nothing happens */
	run_for(b, 3, LEASE_MS / 4);
	assert_int_equal(nevents, 0);
	assert_int_equal(redis_total(alone, NULL), 1);
	assert_true(run_until(b, 3, 10 * LEASE_MS, offline_seen, alone));
	assert_int_equal(count(alone, 0), 1);
	assert_true(events[0].broker == 2 || events[0].broker == 3);
	assert_int_equal(redis_total(alone, NULL), 0);
	/* the other one is still online through b, with b's field only */
	assert_int_equal(redis_total(both, &fields), 1);
	assert_int_equal(fields, 1);
	assert_int_equal(count(both, 0), 0);
	run_for(b, 3, LEASE_MS / 2);
	assert_int_equal(count(alone, 0), 1); /* announced once only */
	presence_disconnect(b[1], both);
	assert_int_equal(count(both, 0), 1);
	presence_close(b[1], 1);
	presence_close(b[2], 1);
}

/* A broker restarted with the same id treats its old counts as dead at
 * once; a user who reconnected to it meanwhile stays online. */
static void test_restart_same_id(void **state)
{
	struct presence *b[1] = {broker("ta", 1)};
	int64_t gone = uid_base + 5, back = uid_base + 6;

	(void)state;
	assert_int_equal(presence_connect(b[0], gone, 20), PRESENCE_OK);
	assert_int_equal(presence_connect(b[0], back, 20), PRESENCE_OK);
	presence_close(b[0], 0); /* crash */
	nevents = 0;
	{
		struct presence_cfg cfg = {
			.broker_id = "ta",
			.lease_ms = LEASE_MS,
			.announce = record,
			.arg = (void *)(intptr_t)1,
			.key_prefix = prefix,
		};

		/* the restart: a client is back before the first tick registers
		 * the new instance (and reaps the old run in the same tick) */
		b[0] = presence_open(&cfg);
		assert_non_null(b[0]);
	}
	assert_int_equal(presence_connect(b[0], back, 20), PRESENCE_OK);
	/* reaped long before a lease could have ended: the old run is known dead */
	assert_true(run_until(b, 1, LEASE_MS / 2, offline_seen, gone));
	assert_true(run_until(b, 1, LEASE_MS / 2, zero_in_redis, gone));
	assert_int_equal(redis_total(back, NULL), 1);
	assert_int_equal(count(back, 0), 0);
	presence_disconnect(b[0], back);
	assert_int_equal(count(back, 0), 1);
	presence_close(b[0], 1);
}

static int b_synced(int64_t unused);
static struct presence *watched;
static int b_synced(int64_t unused)
{
	(void)unused;
	return presence_synced(watched);
}

/* Redis down: connects still succeed (counted locally, the limit by the
 * local count), "online" is announced, "offline" is not (it could be
 * false); when Redis is back the counts are written and the transitions
 * Redis decides are announced. */
static void test_redis_down(void **state)
{
	struct presence *b[2] = {broker("ta", 1), broker("tb", 2)};
	int64_t stays = uid_base + 7, leaves = uid_base + 8, other = uid_base + 9;
	uint64_t t0;

	(void)state;
	run_for(b, 2, 50);
	assert_int_equal(presence_connect(b[0], leaves, 20), PRESENCE_OK);
	assert_int_equal(presence_connect(b[1], other, 20), PRESENCE_OK);
	nevents = 0;
	redis_down();
	t0 = mono_ms();
	assert_int_equal(presence_connect(b[0], stays, 2), PRESENCE_OK);
	assert_int_equal(count(stays, 1), 1);
	assert_int_equal(presence_connect(b[0], stays, 2), PRESENCE_OK);
	assert_int_equal(presence_connect(b[0], stays, 2), PRESENCE_FULL); /* local fallback */
	presence_disconnect(b[0], leaves);
	assert_int_equal(count(leaves, 0), 0);
	/* ticks while Redis is down cost nothing much and block nothing */
	run_for(b, 2, 2 * LEASE_MS);
	assert_true(mono_ms() - t0 < 4 * LEASE_MS);
	assert_int_equal(presence_local(b[0], stays), 2);
	redis_up();
	watched = b[0];
	assert_true(run_until(b, 2, 10 * LEASE_MS, b_synced, 0));
	run_for(b, 2, 100);
	assert_int_equal(count(leaves, 0), 1);
	assert_int_equal(redis_total(leaves, NULL), 0);
	assert_int_equal(redis_total(stays, NULL), 2);
	/* the other broker's user was never announced offline: b[1]'s lease
	 * ran out during the outage, but nobody reaped it while everyone was
	 * renewing again */
	assert_int_equal(count(other, 0), 0);
	assert_int_equal(redis_total(other, NULL), 1);
	presence_disconnect(b[0], stays);
	presence_disconnect(b[0], stays);
	presence_disconnect(b[1], other);
	assert_int_equal(count(stays, 0), 1);
	assert_int_equal(count(other, 0), 1);
	presence_close(b[0], 1);
	presence_close(b[1], 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_online_once_offline_at_last),
		cmocka_unit_test(test_limit_counts_every_broker),
		cmocka_unit_test(test_lingering_not_against_limit),
		cmocka_unit_test(test_dead_broker_reaped),
		cmocka_unit_test(test_restart_same_id),
		cmocka_unit_test(test_redis_down),
	};

	return cmocka_run_group_tests_name("presence (stack)", tests, setup, teardown);
}
