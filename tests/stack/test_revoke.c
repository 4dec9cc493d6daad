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
#include <sys/wait.h>
#include <time.h>
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
		    "VALUES ($1, $2, $2, 'x') RETURNING id",
		    2, p);
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
	r = db_exec(DB_PRIMARY,
		    revoked ? "INSERT INTO sessions (user_id, revoked_at) VALUES ($1, now()) "
			      "RETURNING id"
			    : "INSERT INTO sessions (user_id) VALUES ($1) RETURNING id",
		    1, p);
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
	assert_int_equal(db_init("host=127.0.0.1 port=1 dbname=none connect_timeout=1", NULL, 500),
			 0);
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

static void redis_do(int argc, const char **argv)
{
	struct cache_reply *r = cache_cmd(argc, argv, NULL);

	assert_non_null(r);
	assert_int_not_equal(cache_reply_type(r), CACHE_ERROR);
	cache_reply_free(r);
}

static int redis_exists(const char *key)
{
	const char *argv[] = {"EXISTS", key};
	struct cache_reply *r = cache_cmd(2, argv, NULL);
	int n;

	assert_non_null(r);
	n = (int)cache_reply_int(r);
	cache_reply_free(r);
	return n;
}

#define HERD 8

/* After a flush (or a failover) every worker notices the missing marker at
 * once: exactly one rebuilds Redis's copy from PostgreSQL, and every one of
 * them still refuses a session revoked only in PostgreSQL meanwhile. */
static void test_rebuild_herd_one_winner(void **state)
{
	const char *del[] = {"DEL", "th:{revoked}:epoch", "th:{revoked}:rebuild"};
	int go[2], i, status, rebuilt = 0, refused = 0;
	pid_t pids[HERD];
	int64_t sid;

	(void)state;
	sid = new_session(1); /* revoked in PostgreSQL, never published */
	assert_int_equal(pipe(go), 0);
	for (i = 0; i < HERD; i++) {
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0) {
			char c;
			int rc = 0;
			unsigned long before = revoke_rebuilds(); /* the parent's, inherited */

			/* a worker of its own: own connections, own local set */
			close(go[1]);
			revoke_close();
			db_close();
			cache_close();
			if (db_init(getenv("TH_DB_CONNINFO"), NULL, 2000) < 0 ||
			    cache_init(getenv("TH_REDIS_HOST") ? getenv("TH_REDIS_HOST")
							       : "127.0.0.1",
				       atoi(getenv("TH_REDIS_PORT")), 1000) < 0 ||
			    revoke_init(NULL, 900) < 0)
				_exit(100);
			if (read(go[0], &c, 1) != 0) /* all start when the pipe closes */
				_exit(101);
			if (revoke_check(sid) == 1)
				rc |= 1;
			rc |= (int)(revoke_rebuilds() - before) << 1;
			revoke_close();
			db_close();
			cache_close();
			_exit(rc);
		}
	}
	close(go[0]);
	redis_do(3, del);
	usleep(200 * 1000); /* every child connected and waiting */
	close(go[1]);
	for (i = 0; i < HERD; i++) {
		assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
		assert_true(WIFEXITED(status));
		assert_true(WEXITSTATUS(status) < 100);
		refused += WEXITSTATUS(status) & 1;
		rebuilt += WEXITSTATUS(status) >> 1;
	}
	assert_int_equal(refused, HERD);
	assert_int_equal(rebuilt, 1);
	assert_int_equal(redis_exists("th:{revoked}:epoch"), 1);
	assert_int_equal(redis_exists("th:{revoked}:rebuild"), 0); /* released */
}

/* A worker that took the lock and died half way: its copy is not taken as
 * complete (no marker); sessions are checked in PostgreSQL meanwhile, and
 * once the lock has expired the next worker rebuilds. */
static void test_rebuild_dead_winner(void **state)
{
	const char *del[] = {"DEL", "th:{revoked}:epoch"};
	const char *lock[] = {"SET", "th:{revoked}:rebuild", "a-dead-worker", "PX", "1500"};
	unsigned long before;
	int64_t sid;
	char id[24];
	const char *zscore[] = {"ZSCORE", "th:{revoked}", id};
	struct cache_reply *r;

	(void)state;
	revoke_close();
	assert_int_equal(revoke_init(NULL, 900), 0);
	sid = new_session(1);
	snprintf(id, sizeof(id), "%lld", (long long)sid);
	redis_do(2, del);
	redis_do(5, lock);
	before = revoke_rebuilds();
	revoke_invalidate();
	assert_int_equal(revoke_check(sid), 1);           /* from PostgreSQL */
	assert_int_equal(revoke_check(sid + 1000000), 1); /* unknown: not live */
	assert_int_equal(revoke_rebuilds(), before);
	assert_int_equal(redis_exists("th:{revoked}:epoch"), 0);
	usleep(1700 * 1000);
	revoke_invalidate();
	assert_int_equal(revoke_check(sid), 1);
	assert_int_equal(revoke_rebuilds(), before + 1);
	assert_int_equal(redis_exists("th:{revoked}:epoch"), 1);
	r = cache_cmd(3, zscore, NULL);
	assert_non_null(r);
	assert_int_equal(cache_reply_type(r), CACHE_STR); /* in Redis's copy now */
	cache_reply_free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_overflow_falls_back_to_postgres),
		cmocka_unit_test(test_overflow_without_postgres_cannot_decide),
		cmocka_unit_test(test_rebuild_herd_one_winner),
		cmocka_unit_test(test_rebuild_dead_winner),
	};

	return cmocka_run_group_tests_name("revoke (stack)", tests, setup, teardown);
}
