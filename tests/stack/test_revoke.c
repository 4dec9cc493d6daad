/* Tests of lib/revoke's overflow path against the real servers of a stack.
 *
 * The local revocation set is bounded (TH_REVOKE_MAX_ENTRIES, set to 16
 * here).  A revocation that does not fit must not be dropped silently: a
 * session outside the full set is checked in PostgreSQL, so it is still
 * refused; and with PostgreSQL unreachable too, the answer is "cannot
 * decide" (-1, which every caller refuses), never "not revoked".
 * tests/integration/run runs this with TH_DB_CONNINFO and TH_REDIS_* set. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache.h"
#include "db.h"
#include "revoke.h"

#define N_SESSIONS 40 /* over the bound of 16 */

static int64_t sids[N_SESSIONS], live_sid, user_id;

static int setup(void **state)
{
	const char *conninfo = getenv("TH_DB_CONNINFO");
	char name[40], email[64];
	const char *p[] = {email, name};
	struct db_res *r;

	(void)state;
	if (!conninfo || !getenv("TH_REDIS_PORT")) {
		fprintf(stderr, "TH_DB_CONNINFO and TH_REDIS_PORT must point at a running stack\n");
		return -1;
	}
	if (db_init(conninfo, NULL, 2000) < 0 ||
	    cache_init(getenv("TH_REDIS_HOST") ? getenv("TH_REDIS_HOST") : "127.0.0.1",
		       atoi(getenv("TH_REDIS_PORT")), 250) < 0)
		return -1;
	snprintf(name, sizeof(name), "revoke_t%d", (int)getpid());
	snprintf(email, sizeof(email), "%s@example.test", name);
	r = db_exec(DB_PRIMARY,
		    "INSERT INTO users (email, username, display_name, password_hash) "
		    "VALUES ($1, $2, $2, 'x') RETURNING id", 2, p);
	if (!r)
		return -1;
	user_id = atoll(db_res_get(r, 0, 0));
	db_res_free(r);
	return 0;
}

static int teardown(void **state)
{
	char uid[24];
	const char *p[] = {uid};

	(void)state;
	snprintf(uid, sizeof(uid), "%lld", (long long)user_id);
	db_res_free(db_exec(DB_PRIMARY, "DELETE FROM users WHERE id = $1", 1, p));
	revoke_close();
	db_close();
	cache_close();
	return 0;
}

/* A new session of the test user, revoked in PostgreSQL when revoked. */
static int64_t new_session(int revoked)
{
	char uid[24];
	const char *p[] = {uid};
	struct db_res *r;
	int64_t sid;

	snprintf(uid, sizeof(uid), "%lld", (long long)user_id);
	r = db_exec(DB_PRIMARY, revoked
		    ? "INSERT INTO sessions (user_id, revoked_at) VALUES ($1, now()) RETURNING id"
		    : "INSERT INTO sessions (user_id) VALUES ($1) RETURNING id", 1, p);
	assert_non_null(r);
	sid = atoll(db_res_get(r, 0, 0));
	db_res_free(r);
	return sid;
}

static void test_overflow_falls_back_to_postgres(void **state)
{
	int i, refused = 0;

	(void)state;
	setenv("TH_REVOKE_MAX_ENTRIES", "16", 1);
	assert_int_equal(revoke_init(NULL, 900), 0);
	live_sid = new_session(0);
	for (i = 0; i < N_SESSIONS; i++) {
		sids[i] = new_session(1);
		revoke_publish(sids[i]); /* committed first, as sessions.c does */
	}
	/* every revoked session is refused, the ones the set could not hold too */
	for (i = 0; i < N_SESSIONS; i++)
		refused += revoke_check(sids[i]) == 1;
	assert_int_equal(refused, N_SESSIONS);
	/* a live session is still let through (PostgreSQL says so) */
	assert_int_equal(revoke_check(live_sid), 0);
}

static void test_overflow_without_postgres_cannot_decide(void **state)
{
	int i, unsure = 0;

	(void)state;
	/* PostgreSQL unreachable: a session outside the full set is no longer
	 * taken as live; the caller hears "cannot decide" and refuses */
	usleep(1100 * 1000); /* PostgreSQL's answers are kept for a second */
	db_close();
	assert_int_equal(db_init("host=127.0.0.1 port=1 dbname=none connect_timeout=1", NULL, 500), 0);
	for (i = 0; i < N_SESSIONS; i++) {
		int r = revoke_check(sids[i]);

		assert_true(r != 0);
		unsure += r == -1;
	}
	assert_true(unsure > 0); /* the ones outside the set went to PostgreSQL */
	/* a session id nobody revoked: unknown outside the set, so not "live" */
	assert_int_not_equal(revoke_check(live_sid + 1000000), 0);
	db_close();
	assert_int_equal(db_init(getenv("TH_DB_CONNINFO"), NULL, 2000), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_overflow_falls_back_to_postgres),
		cmocka_unit_test(test_overflow_without_postgres_cannot_decide),
	};

	return cmocka_run_group_tests_name("revoke (stack)", tests, setup, teardown);
}
