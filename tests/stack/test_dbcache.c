/* Tests of lib/db and lib/cache against the real servers of a stack.
 *
 * Not part of `make unit`: tests/integration/run starts a throwaway stack and
 * runs every tests/stack/test_* binary with TH_DB_CONNINFO, TH_REDIS_HOST and
 * TH_REDIS_PORT pointing at it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cache.h"
#include "db.h"

static const char *conninfo;

static int setup(void **state)
{
	(void)state;
	conninfo = getenv("TH_DB_CONNINFO");
	if (!conninfo || !getenv("TH_REDIS_PORT")) {
		fprintf(stderr, "TH_DB_CONNINFO and TH_REDIS_PORT must point at a running stack\n");
		return -1;
	}
	if (db_init(conninfo, NULL, 2000) < 0)
		return -1;
	return cache_init(getenv("TH_REDIS_HOST") ? getenv("TH_REDIS_HOST") : "127.0.0.1",
			  atoi(getenv("TH_REDIS_PORT")), 250);
}

static int teardown(void **state)
{
	(void)state;
	db_close();
	cache_close();
	return 0;
}

static void test_params(void **state)
{
	const char *p[] = {"2", "3", NULL};
	struct db_res *r;

	(void)state;
	r = db_exec(DB_PRIMARY, "SELECT $1::int + $2::int, $3::text IS NULL, $3::text", 3, p);
	assert_non_null(r);
	assert_int_equal(db_res_rows(r), 1);
	assert_string_equal(db_res_get(r, 0, 0), "5");
	assert_string_equal(db_res_get(r, 0, 1), "t");
	assert_true(db_res_isnull(r, 0, 2));
	assert_string_equal(db_res_get(r, 0, 2), "");
	assert_string_equal(db_res_get(r, 5, 5), ""); /* out of range is safe */
	db_res_free(r);
	db_res_free(NULL);
	/* SQL injection stays data */
	{
		const char *q[] = {"'; DROP TABLE users; --"};

		r = db_exec(DB_PRIMARY, "SELECT length($1)", 1, q);
		assert_non_null(r);
		assert_string_equal(db_res_get(r, 0, 0), "23");
		db_res_free(r);
	}
}

static void test_errors_and_transactions(void **state)
{
	const char *one[] = {"1"};
	struct db_res *r;

	(void)state;
	r = db_exec(DB_PRIMARY, "CREATE TEMP TABLE IF NOT EXISTS t_unit (x int PRIMARY KEY)", 0, NULL);
	assert_non_null(r);
	db_res_free(r);
	r = db_exec(DB_PRIMARY, "INSERT INTO t_unit VALUES ($1)", 1, one);
	assert_non_null(r);
	assert_int_equal(db_res_affected(r), 1);
	db_res_free(r);
	assert_null(db_exec(DB_PRIMARY, "INSERT INTO t_unit VALUES ($1)", 1, one));
	assert_int_equal(db_last_err(), TH_ECONFLICT);
	assert_string_equal(db_last_sqlstate(), "23505");
	assert_string_equal(db_last_constraint(), "t_unit_pkey");
	assert_null(db_exec(DB_PRIMARY, "SELEC nonsense", 0, NULL));
	assert_int_equal(db_last_err(), TH_EINTERNAL);
	assert_non_null(strstr(db_last_error(), "syntax"));

	/* a rolled-back insert is gone */
	assert_int_equal(db_begin(), 0);
	{
		const char *two[] = {"2"};

		r = db_exec(DB_PRIMARY, "INSERT INTO t_unit VALUES ($1)", 1, two);
		assert_non_null(r);
		db_res_free(r);
	}
	db_rollback();
	r = db_exec(DB_PRIMARY, "SELECT count(*) FROM t_unit", 0, NULL);
	assert_non_null(r);
	assert_string_equal(db_res_get(r, 0, 0), "1");
	db_res_free(r);
}

static void test_prepared_reuse(void **state)
{
	static const char sql[] = "SELECT $1::int * 2";
	const char *p[] = {"21"};
	struct db_res *r;

	(void)state;
	for (int i = 0; i < 3; i++) {
		r = db_exec(DB_PRIMARY, sql, 1, p);
		assert_non_null(r);
		assert_string_equal(db_res_get(r, 0, 0), "42");
		db_res_free(r);
	}
	r = db_exec(DB_PRIMARY, "SELECT count(*) FROM pg_prepared_statements WHERE statement = $1",
		    1, (const char *[]){sql});
	assert_non_null(r);
	assert_string_equal(db_res_get(r, 0, 0), "1"); /* prepared once, reused */
	db_res_free(r);
}

/* The server ends our connection between two requests (a restart, an idle
 * timeout): the next query must not fail because of it. */
static void test_reconnect_after_termination(void **state)
{
	struct db_res *r;
	PGconn *admin;
	PGresult *k;
	char pid[24];
	const char *p[] = {pid};

	(void)state;
	r = db_exec(DB_PRIMARY, "SELECT pg_backend_pid()", 0, NULL);
	assert_non_null(r);
	snprintf(pid, sizeof(pid), "%s", db_res_get(r, 0, 0));
	db_res_free(r);
	admin = PQconnectdb(conninfo);
	assert_int_equal(PQstatus(admin), CONNECTION_OK);
	k = PQexecParams(admin, "SELECT pg_terminate_backend($1::int)", 1, NULL, p, NULL, NULL, 0);
	assert_int_equal(PQresultStatus(k), PGRES_TUPLES_OK);
	assert_string_equal(PQgetvalue(k, 0, 0), "t");
	PQclear(k);
	PQfinish(admin);
	usleep(200000); /* let the termination reach our socket */
	r = db_exec(DB_PRIMARY, "SELECT pg_backend_pid()", 0, NULL);
	assert_non_null(r);
	assert_string_not_equal(db_res_get(r, 0, 0), pid);
	db_res_free(r);
	assert_int_equal(db_ping(DB_READ), 0); /* no replica: the primary */
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A dead server costs one connect attempt, then fails at once while backing
 * off: requests get 503 quickly instead of each waiting for a timeout. */
static void test_dead_server_backoff(void **state)
{
	double t0;

	(void)state;
	db_close();
	assert_int_equal(db_init("host=127.0.0.1 port=1 dbname=x user=x connect_timeout=2", NULL, 0), 0);
	assert_int_equal(db_ping(DB_PRIMARY), -1);
	assert_int_equal(db_last_err(), TH_EUNAVAILABLE);
	t0 = now_s();
	assert_int_equal(db_ping(DB_PRIMARY), -1);
	assert_true(now_s() - t0 < 0.05);
	assert_non_null(strstr(db_last_error(), "backing off"));
	db_close();
	assert_int_equal(db_init(conninfo, NULL, 2000), 0);
	assert_int_equal(db_ping(DB_PRIMARY), 0);
}

static void test_cache(void **state)
{
	static const char *const set[] = {"SET", "th:unit:bin", "a\0b", "EX", "60"};
	static const size_t setlen[] = {3, 11, 3, 2, 2};
	static const char *const get[] = {"GET", "th:unit:bin"};
	static const char *const bad[] = {"INCR", "th:unit:bin"};
	struct cache_reply *r;
	size_t len;
	const char *s;

	(void)state;
	assert_int_equal(cache_ping(), 0);
	r = cache_cmd(5, set, setlen);
	assert_non_null(r);
	assert_int_equal(cache_reply_type(r), CACHE_STR);
	cache_reply_free(r);
	r = cache_cmd(2, get, NULL);
	assert_non_null(r);
	s = cache_reply_str(r, &len);
	assert_int_equal(len, 3); /* binary safe */
	assert_memory_equal(s, "a\0b", 3);
	cache_reply_free(r);
	/* a server error is a reply, not a lost connection */
	r = cache_cmd(2, bad, NULL);
	assert_non_null(r);
	assert_int_equal(cache_reply_type(r), CACHE_ERROR);
	cache_reply_free(r);
	assert_int_equal(cache_ping(), 0);
	assert_null(cache_cmd(0, get, NULL));
}

static void test_cache_dead_server(void **state)
{
	double t0;

	(void)state;
	cache_close();
	assert_int_equal(cache_init("127.0.0.1", 1, 250), 0);
	assert_int_equal(cache_ping(), -1);
	t0 = now_s();
	assert_int_equal(cache_ping(), -1);
	assert_true(now_s() - t0 < 0.05);
	assert_non_null(strstr(cache_last_error(), "backing off"));
	cache_close();
	assert_int_equal(cache_init(getenv("TH_REDIS_HOST") ? getenv("TH_REDIS_HOST") : "127.0.0.1",
				    atoi(getenv("TH_REDIS_PORT")), 250), 0);
	assert_int_equal(cache_ping(), 0);
}

static void cache_reinit(void)
{
	cache_close();
	assert_int_equal(cache_init(getenv("TH_REDIS_HOST") ? getenv("TH_REDIS_HOST") : "127.0.0.1",
				    atoi(getenv("TH_REDIS_PORT")), 250), 0);
}

/* The server closes our idle connection (as a Redis restart does): the next
 * command, a write too, goes through on a new connection at once, without
 * a failure and without backoff. */
static void test_cache_closed_while_idle(void **state)
{
	static const char *const id[] = {"CLIENT", "ID"};
	static const char *const set[] = {"SET", "th:unit:idle", "1", "EX", "60"};
	char kill_id[32];
	/* SKIPME no: by default the connection that asks is spared */
	const char *kill[] = {"CLIENT", "KILL", "ID", kill_id, "SKIPME", "no"};
	struct cache_reply *r;

	(void)state;
	cache_reinit();
	for (int round = 0; round < 2; round++) {
		r = cache_cmd(2, id, NULL);
		assert_non_null(r);
		snprintf(kill_id, sizeof(kill_id), "%lld", cache_reply_int(r));
		cache_reply_free(r);
		/* Redis answers, then closes the connection that asked */
		r = cache_cmd(6, kill, NULL);
		assert_non_null(r);
		assert_int_equal(cache_reply_int(r), 1);
		cache_reply_free(r);
		usleep(50 * 1000); /* the FIN reaches our socket */
		if (round == 0) {
			assert_int_equal(cache_ping(), 0);
		} else {
			r = cache_cmd(5, set, NULL);
			assert_non_null(r);
			assert_int_equal(cache_reply_type(r), CACHE_STR);
			cache_reply_free(r);
		}
	}
}

/* A fake Redis for what a real one does not do on demand: close a
 * connection after reading a command, before replying.  conns[i] scripts the
 * i-th accepted connection, one letter per command read: 'P' replies +PONG
 * to PING and an error to anything else, 'C' closes without a reply.  Returns
 * the child's pid; *port is where it listens. */
static pid_t fake_redis(const char *const *conns, int n, int *port)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t alen = sizeof(a);
	int ls = socket(AF_INET, SOCK_STREAM, 0);
	pid_t pid;

	assert_true(ls >= 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(ls, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(ls, 4), 0);
	assert_int_equal(getsockname(ls, (struct sockaddr *)&a, &alen), 0);
	*port = ntohs(a.sin_port);
	pid = fork();
	assert_true(pid >= 0);
	if (pid > 0) {
		close(ls);
		return pid;
	}
	alarm(10); /* a client that never comes back must not leave us waiting */
	for (int i = 0; i < n; i++) {
		int c = accept(ls, NULL, NULL);
		char buf[512];

		if (c < 0)
			_exit(1);
		for (const char *step = conns[i]; *step; step++) {
			ssize_t got = read(c, buf, sizeof(buf) - 1);
			const char *out;

			if (got <= 0)
				_exit(2);
			buf[got] = '\0';
			if (*step == 'C')
				break;
			out = strstr(buf, "PING") ? "+PONG\r\n" : "-ERR unexpected command\r\n";
			if (write(c, out, strlen(out)) < 0)
				_exit(3);
		}
		close(c);
	}
	_exit(0);
}

/* The server closes after reading a command, before replying: a read is
 * sent again once on a new connection; a write is not (it may have run). */
static void test_cache_lost_reply(void **state)
{
	static const char *const conns[] = {"PC", "P"};
	static const char *const set[] = {"SET", "k", "v"};
	int port, status;
	pid_t pid;

	(void)state;
	/* a read: answered on the second connection */
	pid = fake_redis(conns, 2, &port);
	cache_close();
	assert_int_equal(cache_init("127.0.0.1", port, 1000), 0);
	assert_int_equal(cache_ping(), 0);
	assert_int_equal(cache_ping(), 0);
	cache_close();
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);

	/* a write: fails, is not sent again; the next call connects at once */
	pid = fake_redis(conns, 2, &port);
	assert_int_equal(cache_init("127.0.0.1", port, 1000), 0);
	assert_int_equal(cache_ping(), 0);
	assert_null(cache_cmd(3, set, NULL));
	assert_int_equal(cache_ping(), 0);
	cache_close();
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	cache_reinit();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_params),
		cmocka_unit_test(test_errors_and_transactions),
		cmocka_unit_test(test_prepared_reuse),
		cmocka_unit_test(test_reconnect_after_termination),
		cmocka_unit_test(test_dead_server_backoff),
		cmocka_unit_test(test_cache),
		cmocka_unit_test(test_cache_dead_server),
		cmocka_unit_test(test_cache_closed_while_idle),
		cmocka_unit_test(test_cache_lost_reply),
	};

	return cmocka_run_group_tests_name("db+cache (live servers)", tests, setup, teardown);
}
