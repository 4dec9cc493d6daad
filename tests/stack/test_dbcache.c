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
#include <fcntl.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "arena.h"
#include "cache.h"
#include "db.h"
#include "ratelimit.h"

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

/* db_res_own: results given to an arena die with it (at a reset, as a
 * request's do, and at the end), one freed early is not freed again; under
 * `make asan` a leak or a double free fails this. */
static void test_res_own(void **state)
{
	struct arena a;
	struct db_res *r1, *r2;

	(void)state;
	arena_init(&a);
	assert_null(db_res_own(&a, NULL));
	r1 = db_res_own(&a, db_exec(DB_PRIMARY, "SELECT 1", 0, NULL));
	r2 = db_res_own(&a, db_exec(DB_PRIMARY, "SELECT 2", 0, NULL));
	assert_non_null(r1);
	assert_non_null(r2);
	assert_string_equal(db_res_get(r1, 0, 0), "1");
	db_res_free(r2); /* early, as a loop of many does */
	arena_reset(&a);
	r1 = db_res_own(&a, db_exec(DB_READ, "SELECT 3", 0, NULL));
	assert_non_null(r1);
	assert_string_equal(db_res_get(r1, 0, 0), "3");
	arena_free(&a);
}

static void test_errors_and_transactions(void **state)
{
	const char *one[] = {"1"};
	struct db_res *r;

	(void)state;
	r = db_exec(DB_PRIMARY, "CREATE TEMP TABLE IF NOT EXISTS t_unit (x int PRIMARY KEY)", 0,
		    NULL);
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

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void backend_pid(enum db_role role, char *pid, size_t size)
{
	struct db_res *r = db_exec(role, "SELECT pg_backend_pid()", 0, NULL);

	assert_non_null(r);
	snprintf(pid, size, "%s", db_res_get(r, 0, 0));
	db_res_free(r);
}

/* Another session that ends ours (pid) after delay_s, on the server, while
 * this process waits inside db_exec(); collect it with terminator_end(). */
static PGconn *terminator(const char *pid, const char *delay_s)
{
	const char *p[] = {delay_s, pid};
	PGconn *admin = PQconnectdb(conninfo);

	assert_int_equal(PQstatus(admin), CONNECTION_OK);
	assert_int_equal(PQsendQueryParams(admin,
					   "SELECT pg_terminate_backend($2::int) FROM "
					   "pg_sleep($1::float8)",
					   2, NULL, p, NULL, NULL, 0),
			 1);
	return admin;
}

static void terminator_end(PGconn *admin)
{
	PGresult *k = PQgetResult(admin);

	assert_int_equal(PQresultStatus(k), PGRES_TUPLES_OK);
	assert_string_equal(PQgetvalue(k, 0, 0), "t"); /* it ended our session */
	PQclear(k);
	while ((k = PQgetResult(admin)) != NULL)
		PQclear(k);
	PQfinish(admin);
}

/* The server ends our session while a statement runs (a restart, an
 * operator): a read on the read handle is sent again on a new connection; a
 * write is not (it may have run), only that call fails, and the next call
 * connects at once; inside a transaction, the rest of the transaction
 * fails until db_rollback(), then all is well at once. */
static void test_terminated_mid_statement(void **state)
{
	const char *seven[] = {"7"};
	char pid[24], pid2[24];
	struct db_res *r;
	PGconn *admin;
	double t0;

	(void)state;
	r = db_exec(DB_PRIMARY, "CREATE TABLE IF NOT EXISTS th_unit_lost (v int)", 0, NULL);
	assert_non_null(r);
	db_res_free(r);
	r = db_exec(DB_PRIMARY, "TRUNCATE th_unit_lost", 0, NULL);
	assert_non_null(r);
	db_res_free(r);

	/* a read: answered on a second connection */
	backend_pid(DB_READ, pid, sizeof(pid));
	admin = terminator(pid, "0.3");
	r = db_exec(DB_READ, "SELECT $1::int FROM pg_sleep(0.6)", 1, seven);
	terminator_end(admin);
	assert_non_null(r);
	assert_string_equal(db_res_get(r, 0, 0), "7");
	db_res_free(r);
	backend_pid(DB_READ, pid2, sizeof(pid2));
	assert_string_not_equal(pid, pid2);

	/* a write: fails, is not sent again; the next call connects at once */
	backend_pid(DB_PRIMARY, pid, sizeof(pid));
	admin = terminator(pid, "0.3");
	assert_null(db_exec(DB_PRIMARY,
			    "INSERT INTO th_unit_lost SELECT $1::int FROM pg_sleep(0.6)", 1,
			    seven));
	terminator_end(admin);
	assert_int_equal(db_last_err(), TH_EUNAVAILABLE);
	t0 = now_s();
	r = db_exec(DB_PRIMARY, "SELECT count(*) FROM th_unit_lost", 0, NULL);
	assert_true(now_s() - t0 < 0.5);
	assert_non_null(r);                            /* not "backing off" */
	assert_string_equal(db_res_get(r, 0, 0), "0"); /* not run twice (nor once) */
	db_res_free(r);

	/* inside a transaction */
	assert_int_equal(db_begin(), 0);
	backend_pid(DB_PRIMARY, pid, sizeof(pid));
	admin = terminator(pid, "0.3");
	assert_null(db_exec(DB_PRIMARY,
			    "INSERT INTO th_unit_lost SELECT $1::int FROM pg_sleep(0.6)", 1,
			    seven));
	terminator_end(admin);
	assert_null(db_exec(DB_PRIMARY, "INSERT INTO th_unit_lost VALUES ($1)", 1, seven));
	assert_int_equal(db_last_err(), TH_EUNAVAILABLE);
	assert_int_equal(db_commit(), -1);
	db_rollback();
	assert_int_equal(db_ping(DB_PRIMARY), 0);
	r = db_exec(DB_PRIMARY, "SELECT count(*) FROM th_unit_lost", 0, NULL);
	assert_non_null(r);
	assert_string_equal(db_res_get(r, 0, 0), "0"); /* nothing ran outside the transaction */
	db_res_free(r);
	r = db_exec(DB_PRIMARY, "DROP TABLE th_unit_lost", 0, NULL);
	assert_non_null(r);
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

/* A dead server costs one connect attempt, then fails at once while backing
 * off: requests get 503 quickly instead of each waiting for a timeout. */
static void test_dead_server_backoff(void **state)
{
	double t0;

	(void)state;
	db_close();
	assert_int_equal(db_init("host=127.0.0.1 port=1 dbname=x user=x connect_timeout=2", NULL,
				 0),
			 0);
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

/* A malformed conninfo is a database that cannot be reached (503), and the
 * parser's message, which may quote the password, is not passed on. */
static void test_conninfo_malformed(void **state)
{
	(void)state;
	db_close();
	assert_int_equal(db_init("password=s3cr3t host='127.0.0.1", NULL, 0), 0);
	assert_int_equal(db_ping(DB_PRIMARY), -1);
	assert_int_equal(db_last_err(), TH_EUNAVAILABLE);
	assert_non_null(strstr(db_last_error(), "malformed"));
	assert_null(strstr(db_last_error(), "s3cr3t"));
	db_close();
	assert_int_equal(db_init(conninfo, NULL, 2000), 0);
	assert_int_equal(db_ping(DB_PRIMARY), 0);
}

/* Host names are resolved by us within connect_timeout (lib/dbhost.c), not
 * by libpq: a name that does not resolve is left out of a multi-host list
 * (the next host serves), and a list of such names fails at once with the
 * names in the message.  (A DNS server that never answers is tested in
 * tests/cluster.) */
static void test_host_names_resolved(void **state)
{
	char two[1024];
	double t0;
	int n;

	(void)state;
	db_close();
	n = snprintf(two, sizeof(two), "%s host=th-unresolvable.invalid,127.0.0.1", conninfo);
	assert_true(n > 0 && (size_t)n < sizeof(two));
	assert_int_equal(db_init(two, NULL, 2000), 0);
	assert_int_equal(db_ping(DB_PRIMARY), 0);
	db_close();
	n = snprintf(two, sizeof(two), "%s host=th-unresolvable.invalid", conninfo);
	assert_true(n > 0 && (size_t)n < sizeof(two));
	assert_int_equal(db_init(two, NULL, 2000), 0);
	t0 = now_s();
	assert_int_equal(db_ping(DB_PRIMARY), -1);
	assert_true(now_s() - t0 < 3.0);
	assert_int_equal(db_last_err(), TH_EUNAVAILABLE);
	assert_non_null(strstr(db_last_error(), "th-unresolvable.invalid"));
	db_close();
	assert_int_equal(db_init(conninfo, NULL, 2000), 0);
	assert_int_equal(db_ping(DB_PRIMARY), 0);
}

/* TH_DB_PREPARE=0 (PgBouncer in transaction mode): nothing is prepared and
 * no session setting is made; statements work the same. */
static void test_prepare_off(void **state)
{
	static const char sql[] = "SELECT $1::int * 3";
	const char *p[] = {"14"};
	struct db_res *r;

	(void)state;
	db_close();
	assert_int_equal(setenv("TH_DB_PREPARE", "0", 1), 0);
	assert_int_equal(db_init(conninfo, NULL, 2000), 0);
	for (int i = 0; i < 3; i++) {
		r = db_exec(DB_PRIMARY, sql, 1, p);
		assert_non_null(r);
		assert_string_equal(db_res_get(r, 0, 0), "42");
		db_res_free(r);
	}
	r = db_exec(DB_PRIMARY, "SELECT count(*) FROM pg_prepared_statements", 0, NULL);
	assert_non_null(r);
	assert_string_equal(db_res_get(r, 0, 0), "0");
	db_res_free(r);
	r = db_exec(DB_PRIMARY, "SELECT current_setting('statement_timeout')", 0, NULL);
	assert_non_null(r);
	assert_string_not_equal(db_res_get(r, 0, 0), "2s"); /* the role's, not ours */
	db_res_free(r);
	db_close();
	assert_int_equal(unsetenv("TH_DB_PREPARE"), 0);
	assert_int_equal(db_init(conninfo, NULL, 2000), 0);
	r = db_exec(DB_PRIMARY, "SELECT current_setting('statement_timeout')", 0, NULL);
	assert_non_null(r);
	assert_string_equal(db_res_get(r, 0, 0), "2s");
	db_res_free(r);
}

/* A session that answers 25006 (read_only_sql_transaction) stands for a
 * primary demoted after a failover: the connection is replaced and a
 * statement that cannot have run is sent again on the new one (which a
 * multi-host conninfo points at the new primary); inside a transaction the
 * transaction fails until db_rollback(); a server whose every connection
 * says so (a standby behind a single-host conninfo) is TH_EUNAVAILABLE
 * (503), never TH_EINTERNAL, and the pipelined transactions see it so too. */
static void test_read_only_server(void **state)
{
	static const char *const ro[] = {"SET default_transaction_read_only = on"};
	const char *seq[] = {"posts_id_seq"};
	char pid1[16], pid2[16], ro_conninfo[1024];
	struct db_res *r;
	int n;

	(void)state;
	/* outside a transaction: replaced, sent again, succeeds */
	db_res_free(db_exec(DB_PRIMARY, ro[0], 0, NULL));
	backend_pid(DB_PRIMARY, pid1, sizeof(pid1));
	r = db_exec(DB_PRIMARY, "SELECT nextval($1::regclass)", 1, seq);
	assert_non_null(r);
	db_res_free(r);
	backend_pid(DB_PRIMARY, pid2, sizeof(pid2));
	assert_string_not_equal(pid1, pid2);

	/* inside a transaction: that call and the rest fail, until rollback */
	assert_int_equal(db_begin(), 0);
	db_res_free(db_exec(DB_PRIMARY, "SET TRANSACTION READ ONLY", 0, NULL));
	assert_null(db_exec(DB_PRIMARY, "SELECT nextval($1::regclass)", 1, seq));
	assert_int_equal(db_last_err(), TH_EUNAVAILABLE);
	assert_string_equal(db_last_sqlstate(), "25006");
	assert_null(db_exec(DB_PRIMARY, "SELECT 1", 0, NULL));
	assert_int_equal(db_last_err(), TH_EUNAVAILABLE);
	db_rollback();
	assert_int_equal(db_ping(DB_PRIMARY), 0);

	/* every connection read-only: 503, then backing off */
	db_close();
	n = snprintf(ro_conninfo, sizeof(ro_conninfo),
		     "%s options='-c default_transaction_read_only=on'", conninfo);
	assert_true(n > 0 && (size_t)n < sizeof(ro_conninfo));
	assert_int_equal(db_init(ro_conninfo, NULL, 2000), 0);
	assert_null(db_exec(DB_PRIMARY, "SELECT nextval($1::regclass)", 1, seq));
	assert_int_equal(db_last_err(), TH_EUNAVAILABLE);
	assert_null(db_exec(DB_PRIMARY, "SELECT nextval($1::regclass)", 1, seq));
	assert_int_equal(db_last_err(), TH_EUNAVAILABLE);
	assert_non_null(strstr(db_last_error(), "backing off"));
	{
		const char *sqls[] = {"SELECT nextval($1::regclass)"};
		const int np[] = {1};
		const char *const *pp[] = {seq};
		struct db_res *last = NULL;
		int rc = 0;

		assert_int_equal(db_tx_send(1, sqls, np, pp), 0);
		for (int i = 0; i < 2000 && (rc = db_tx_poll(&last)) == 0; i++)
			usleep(1000);
		assert_int_equal(rc, -1);
		assert_null(last);
		assert_int_equal(db_last_err(), TH_EUNAVAILABLE);
		assert_int_equal(db_tx_fd(), -1); /* the connection went */
	}
	db_close();
	assert_int_equal(db_init(conninfo, NULL, 2000), 0);
	assert_int_equal(db_ping(DB_PRIMARY), 0);
}

/* A statement slower than the client-side bound (the server's own timeout
 * switched off for it): the call gives up (503), the statement is stopped on
 * the server rather than left running, and the handle is not put into
 * backoff: the very next call works, on a connection with the session
 * settings. */
static void test_slow_statement_cancelled(void **state)
{
	struct db_res *r;
	double t0, took;
	int running = -1;

	(void)state;
	db_close();
	/* the read handle (the same server) watches the primary handle */
	assert_int_equal(db_init(conninfo, conninfo, 500), 0); /* client bound 1.5 s */
	r = db_exec(DB_PRIMARY, "SELECT set_config('statement_timeout', '0', false)", 0, NULL);
	assert_non_null(r);
	db_res_free(r);
	t0 = now_s();
	assert_null(db_exec(DB_PRIMARY, "SELECT pg_sleep(6) /* th-slow */", 0, NULL));
	took = now_s() - t0;
	assert_int_equal(db_last_err(), TH_EUNAVAILABLE);
	assert_true(took >= 1.4 && took < 4.5);
	/* not backing off: the next statement runs at once */
	r = db_exec(DB_PRIMARY, "SELECT current_setting('statement_timeout')", 0, NULL);
	assert_non_null(r);
	assert_string_equal(db_res_get(r, 0, 0), "500ms");
	db_res_free(r);
	/* and the slow one no longer runs (it would for 4.5 s more) */
	for (int i = 0; i < 50 && running != 0; i++) {
		r = db_exec(DB_READ,
			    "SELECT count(*) FROM pg_stat_activity "
			    "WHERE query LIKE '%th-slow%' AND pid <> pg_backend_pid()",
			    0, NULL);
		assert_non_null(r);
		running = atoi(db_res_get(r, 0, 0));
		db_res_free(r);
		if (running)
			usleep(20 * 1000);
	}
	assert_int_equal(running, 0);
	db_close();
	assert_int_equal(db_init(conninfo, NULL, 2000), 0);
}

/* 25006 on the read handle, which may be a standby by design
 * (target_session_attrs=prefer-standby), is a statement that should not
 * have been sent there, not a failover: a 500, and the handle is neither
 * replaced over and over nor put into backoff. */
static void test_read_only_on_read_handle(void **state)
{
	char ro_conninfo[1024], pid1[16], pid2[16];
	struct db_res *r;
	int n;

	(void)state;
	db_close();
	n = snprintf(ro_conninfo, sizeof(ro_conninfo),
		     "%s options='-c default_transaction_read_only=on'", conninfo);
	assert_true(n > 0 && (size_t)n < sizeof(ro_conninfo));
	assert_int_equal(db_init(conninfo, ro_conninfo, 2000), 0);
	backend_pid(DB_READ, pid1, sizeof(pid1));
	assert_null(db_exec(DB_READ, "CREATE TEMP TABLE th_ro_probe (x int)", 0, NULL));
	assert_int_equal(db_last_err(), TH_EINTERNAL);
	assert_string_equal(db_last_sqlstate(), "25006");
	assert_int_equal(db_ping(DB_READ), 0);
	backend_pid(DB_READ, pid2, sizeof(pid2));
	assert_string_equal(pid1, pid2); /* the same connection, kept */
	/* the primary handle stays as it was */
	r = db_exec(DB_PRIMARY, "SELECT 1", 0, NULL);
	assert_non_null(r);
	db_res_free(r);
	db_close();
	assert_int_equal(db_init(conninfo, NULL, 2000), 0);
}

/* ---- retries after a conflict or a statement timeout (issue 19) ---- */

/* A second session of its own, for the locks the tests hold against lib/db. */
static PGconn *blocker_open(void)
{
	PGconn *b = PQconnectdb(conninfo);

	assert_int_equal(PQstatus(b), CONNECTION_OK);
	return b;
}

static void blocker_exec(PGconn *b, const char *sql)
{
	PGresult *k = PQexec(b, sql);

	assert_int_equal(PQresultStatus(k), PGRES_COMMAND_OK);
	PQclear(k);
}

static void retry_table(void)
{
	static const char *const setup[] = {
		"DROP TABLE IF EXISTS th_retry_probe",
		"CREATE TABLE th_retry_probe (id int PRIMARY KEY, v int NOT NULL)",
		"INSERT INTO th_retry_probe VALUES (1, 0), (2, 0)",
	};

	for (size_t i = 0; i < sizeof(setup) / sizeof(setup[0]); i++) {
		struct db_res *r = db_exec(DB_PRIMARY, setup[i], 0, NULL);

		assert_non_null(r);
		db_res_free(r);
	}
}

static int probe_value(int id)
{
	char s[8];
	const char *p[] = {s};
	struct db_res *r;
	int v;

	snprintf(s, sizeof(s), "%d", id);
	r = db_exec(DB_PRIMARY, "SELECT v FROM th_retry_probe WHERE id = $1::int", 1, p);
	assert_non_null(r);
	v = atoi(db_res_get(r, 0, 0));
	db_res_free(r);
	return v;
}

/* Polls the pipelined transaction out until it ends (at most 20 s); each
 * round also calls step(arg, elapsed seconds) when given. */
static int tx_wait(struct db_res **last, void (*step)(void *, double), void *arg)
{
	double t0 = now_s();
	int rc = 0;

	while ((rc = db_tx_poll(last)) == 0 && now_s() - t0 < 20) {
		struct pollfd p = {.fd = db_tx_fd(), .events = db_tx_events()};

		assert_true(db_tx_busy());
		assert_true(p.fd >= 0);
		(void)poll(&p, 1, 20);
		if (step)
			step(arg, now_s() - t0);
	}
	return rc;
}

struct release_at {
	PGconn *b;
	double at;
	int done;
};

static void release_step(void *arg, double elapsed)
{
	struct release_at *x = arg;

	if (!x->done && elapsed >= x->at) {
		blocker_exec(x->b, "COMMIT");
		x->done = 1;
	}
}

/* The row the transaction updates is locked by another session past the
 * statement timeout (300 ms): the server cancels the statement (57014) and
 * rolls the transaction back; it is sent again after a pause, and once the
 * lock goes it commits, once. */
static void test_tx_retry_after_statement_timeout(void **state)
{
	static const char *const sqls[] = {
		"UPDATE th_retry_probe SET v = v + 1 WHERE id = $1::int RETURNING v"};
	static const char *const one[] = {"1"};
	const int np[] = {1};
	const char *const *pp[] = {one};
	struct release_at x = {.at = 0.8};
	struct db_res *last = NULL;
	double t0;
	int rc;

	(void)state;
	db_close();
	setenv("TH_DB_RETRIES", "8", 1);
	setenv("TH_DB_RETRY_MS", "10000", 1);
	assert_int_equal(db_init(conninfo, NULL, 300), 0);
	retry_table();
	x.b = blocker_open();
	blocker_exec(x.b, "BEGIN");
	blocker_exec(x.b, "UPDATE th_retry_probe SET v = v WHERE id = 1");
	t0 = now_s();
	assert_int_equal(db_tx_send(1, sqls, np, pp), 0);
	rc = tx_wait(&last, release_step, &x);
	assert_int_equal(rc, 1);
	assert_true(x.done);
	/* without a retry it would have failed at 300 ms, before the release */
	assert_true(now_s() - t0 >= 0.8);
	assert_string_equal(db_res_get(last, 0, 0), "1");
	db_res_free(last);
	assert_int_equal(probe_value(1), 1); /* committed once */
	PQfinish(x.b);

	/* a lock that stays: a bounded number of tries, then 503 (57014) */
	x.b = blocker_open();
	blocker_exec(x.b, "BEGIN");
	blocker_exec(x.b, "UPDATE th_retry_probe SET v = v WHERE id = 1");
	db_close();
	setenv("TH_DB_RETRIES", "2", 1);
	assert_int_equal(db_init(conninfo, NULL, 300), 0);
	t0 = now_s();
	assert_int_equal(db_tx_send(1, sqls, np, pp), 0);
	rc = tx_wait(&last, NULL, NULL);
	assert_int_equal(rc, -1);
	assert_null(last);
	assert_int_equal(db_last_err(), TH_EUNAVAILABLE);
	assert_string_equal(db_last_sqlstate(), "57014");
	/* three tries of 300 ms and two pauses (25-100 ms): bounded */
	assert_true(now_s() - t0 >= 0.85);
	assert_true(now_s() - t0 < 5);
	assert_false(db_tx_busy());
	blocker_exec(x.b, "ROLLBACK");
	PQfinish(x.b);
	assert_int_equal(probe_value(1), 1); /* nothing of the failed one */

	unsetenv("TH_DB_RETRIES");
	unsetenv("TH_DB_RETRY_MS");
	db_close();
	assert_int_equal(db_init(conninfo, NULL, 2000), 0);
}

struct deadlock {
	PGconn *b;
	int sent, answered, committed;
	ExecStatusType st;
};

/* The other session's side of the deadlock: its second update goes out
 * once the transaction waits for its first lock, and it commits once the
 * server answered it. */
static void deadlock_step(void *arg, double elapsed)
{
	struct deadlock *d = arg;

	if (!d->sent && elapsed >= 0.2) {
		assert_int_equal(PQsendQuery(d->b, "UPDATE th_retry_probe SET v = v + 10 "
						   "WHERE id = 2"),
				 1);
		d->sent = 1;
	}
	if (d->sent && !d->answered) {
		PGresult *k;

		assert_int_equal(PQconsumeInput(d->b), 1);
		if (PQisBusy(d->b))
			return;
		k = PQgetResult(d->b);
		d->st = PQresultStatus(k);
		PQclear(k);
		while ((k = PQgetResult(d->b)) != NULL)
			PQclear(k);
		d->answered = 1;
	}
	if (d->answered && !d->committed) {
		blocker_exec(d->b, "COMMIT");
		d->committed = 1;
	}
}

/* A real deadlock: the transaction holds row 2 and waits for row 1, which
 * the other session holds while it waits for row 2.  The server picks the
 * transaction (its wait started first, so its deadlock check runs first)
 * and rolls it back (40P01); it is sent again after a pause and commits
 * once the other session is done: both updates land, each once. */
static void test_tx_retry_after_deadlock(void **state)
{
	static const char *const sqls[] =
		{"UPDATE th_retry_probe SET v = v + 1 WHERE id = $1::int",
		 "UPDATE th_retry_probe SET v = v + 1 WHERE id = $1::int RETURNING v"};
	static const char *const two[] = {"2"}, *const one[] = {"1"};
	const int np[] = {1, 1};
	const char *const *pp[] = {two, one};
	struct deadlock d = {0};
	struct db_res *last = NULL;
	int rc;

	(void)state;
	retry_table();
	d.b = blocker_open();
	blocker_exec(d.b, "BEGIN");
	blocker_exec(d.b, "UPDATE th_retry_probe SET v = v + 10 WHERE id = 1");
	assert_int_equal(db_tx_send(2, sqls, np, pp), 0);
	rc = tx_wait(&last, deadlock_step, &d);
	assert_int_equal(d.st, PGRES_COMMAND_OK); /* the other side went through */
	assert_true(d.committed);
	assert_int_equal(rc, 1);
	assert_string_equal(db_res_get(last, 0, 0), "11");
	db_res_free(last);
	assert_int_equal(probe_value(1), 11);
	assert_int_equal(probe_value(2), 11);
	PQfinish(d.b);
}

/* A statement alone (autocommit) that the server rolls back for a deadlock
 * is sent again after a pause; inside a transaction it is not (the
 * transaction is gone): 503 for the request.  The function raises the
 * real SQLSTATE the first n times it runs. */
static void test_exec_retry_after_conflict(void **state)
{
	static const char *const setup[] = {
		"DROP SEQUENCE IF EXISTS th_flaky_seq",
		"CREATE SEQUENCE th_flaky_seq",
		"CREATE OR REPLACE FUNCTION th_flaky(n int) RETURNS int LANGUAGE plpgsql AS $$ "
		"BEGIN IF nextval('th_flaky_seq') <= n THEN "
		"RAISE EXCEPTION 'simulated deadlock' USING ERRCODE = '40P01'; END IF; "
		"RETURN currval('th_flaky_seq'); END $$",
	};
	const char *two[] = {"2"}, *five[] = {"5"}, *big[] = {"1000000"};
	struct db_res *r;

	(void)state;
	for (size_t i = 0; i < sizeof(setup) / sizeof(setup[0]); i++) {
		r = db_exec(DB_PRIMARY, setup[i], 0, NULL);
		assert_non_null(r);
		db_res_free(r);
	}
	/* two deadlocks, then through: the third run answers (the default
	 * TH_DB_RETRIES is 3) */
	r = db_exec(DB_PRIMARY, "SELECT th_flaky($1::int)", 1, two);
	assert_non_null(r);
	assert_string_equal(db_res_get(r, 0, 0), "3");
	db_res_free(r);
	/* more than the retries: 503 with the server's SQLSTATE */
	r = db_exec(DB_PRIMARY, "SELECT setval('th_flaky_seq', 1, false)", 0, NULL);
	db_res_free(r);
	assert_null(db_exec(DB_PRIMARY, "SELECT th_flaky($1::int)", 1, five));
	assert_int_equal(db_last_err(), TH_EUNAVAILABLE);
	assert_string_equal(db_last_sqlstate(), "40P01");
	r = db_exec(DB_PRIMARY, "SELECT last_value FROM th_flaky_seq", 0, NULL);
	assert_string_equal(db_res_get(r, 0, 0), "4"); /* one run and three retries */
	db_res_free(r);
	/* inside a transaction: one run, no retry */
	assert_int_equal(db_begin(), 0);
	assert_null(db_exec(DB_PRIMARY, "SELECT th_flaky($1::int)", 1, big));
	assert_int_equal(db_last_err(), TH_EUNAVAILABLE);
	db_rollback();
	r = db_exec(DB_PRIMARY, "SELECT last_value FROM th_flaky_seq", 0, NULL);
	assert_string_equal(db_res_get(r, 0, 0), "5");
	db_res_free(r);
	r = db_exec(DB_PRIMARY, "DROP FUNCTION th_flaky(int)", 0, NULL);
	db_res_free(r);
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
				    atoi(getenv("TH_REDIS_PORT")), 250),
			 0);
	assert_int_equal(cache_ping(), 0);
}

/* The password (TH_REDIS_PASSWORD_FILE, the stack's keys/redis.secret) is
 * sent with AUTH on every connection, TCP and unix socket: a wrong one is
 * refused (and backs off like a server down), none gets NOAUTH from the
 * server, a file that cannot be read fails cache_init itself. */
static void test_cache_auth(void **state)
{
	static const char *const get[] = {"GET", "th:unit:auth"};
	const char *host = getenv("TH_REDIS_HOST") ? getenv("TH_REDIS_HOST") : "127.0.0.1";
	const char *pwfile = getenv("TH_REDIS_PASSWORD_FILE"), *var = getenv("TH_VAR_DIR");
	char saved[4096], wrong[] = "/tmp/th-stack-auth.XXXXXX", sock[4200];
	struct cache_reply *r;
	int port = atoi(getenv("TH_REDIS_PORT")), fd;

	(void)state;
	if (!pwfile || !*pwfile)
		skip(); /* a Redis without a password */
	snprintf(saved, sizeof(saved), "%s", pwfile);
	cache_close();
	setenv("TH_REDIS_PASSWORD_FILE", "/nonexistent/redis.secret", 1);
	assert_int_equal(cache_init(host, port, 250), -1);
	cache_close();

	fd = mkstemp(wrong);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "not-the-password\n", 17), 17);
	close(fd);
	setenv("TH_REDIS_PASSWORD_FILE", wrong, 1);
	assert_int_equal(cache_init(host, port, 250), 0);
	assert_null(cache_cmd(2, get, NULL));
	assert_non_null(strstr(cache_last_error(), "AUTH refused"));
	cache_close();
	unlink(wrong);

	unsetenv("TH_REDIS_PASSWORD_FILE");
	assert_int_equal(cache_init(host, port, 250), 0);
	r = cache_cmd(2, get, NULL);
	assert_non_null(r);
	assert_int_equal(cache_reply_type(r), CACHE_ERROR); /* NOAUTH, from the server */
	cache_reply_free(r);
	cache_close();

	setenv("TH_REDIS_PASSWORD_FILE", saved, 1);
	if (var && snprintf(sock, sizeof(sock), "%s/run/redis.sock", var) < (int)sizeof(sock) &&
	    access(sock, F_OK) == 0) {
		assert_int_equal(cache_init(sock, 0, 250), 0);
		assert_int_equal(cache_ping(), 0);
		cache_close();
	}
	assert_int_equal(cache_init(host, port, 250), 0);
	assert_int_equal(cache_ping(), 0);
}

static void cache_reinit(void)
{
	cache_close();
	assert_int_equal(cache_init(getenv("TH_REDIS_HOST") ? getenv("TH_REDIS_HOST") : "127.0.0.1",
				    atoi(getenv("TH_REDIS_PORT")), 250),
			 0);
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

/* A connection of our own to the stack's Redis, to steer the server while
 * the cache module waits for a reply: cmds are sent pipelined, without
 * waiting; the replies are read by admin_replies(). */
/* The stack's Redis wants its password (TH_REDIS_PASSWORD_FILE) first: sent
 * and answered before the commands, so their replies are all that follows. */
static void admin_auth(int fd)
{
	const char *file = getenv("TH_REDIS_PASSWORD_FILE");
	char pw[257], buf[300];
	ssize_t n, got;
	int pfd, len;

	if (!file || !*file)
		return;
	pfd = open(file, O_RDONLY | O_CLOEXEC);
	assert_true(pfd >= 0);
	n = read(pfd, pw, sizeof(pw) - 1);
	close(pfd);
	assert_true(n > 0);
	while (n > 0 && (pw[n - 1] == '\n' || pw[n - 1] == '\r'))
		n--;
	pw[n] = '\0';
	len = snprintf(buf, sizeof(buf), "AUTH %s\r\n", pw);
	assert_true(len > 0 && (size_t)len < sizeof(buf));
	assert_int_equal(write(fd, buf, (size_t)len), len);
	got = read(fd, buf, 5);
	assert_int_equal(got, 5);
	assert_memory_equal(buf, "+OK\r\n", 5);
}

static int admin_send(const char *const *cmds, int n)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	char buf[2048];
	size_t len = 0;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons((unsigned short)atoi(getenv("TH_REDIS_PORT")));
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	admin_auth(fd);
	/* inline commands: words separated by spaces, a line each */
	for (int i = 0; i < n; i++)
		len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s\r\n", cmds[i]);
	assert_true(len < sizeof(buf));
	assert_int_equal(write(fd, buf, len), (ssize_t)len);
	return fd;
}

/* Reads until want (the replies expected, in order) has arrived; closes fd. */
static void admin_replies(int fd, const char *want)
{
	char buf[512];
	size_t len = 0, n = strlen(want);

	while (len < n) {
		ssize_t got = read(fd, buf + len, sizeof(buf) - 1 - len);

		assert_true(got > 0);
		len += (size_t)got;
	}
	buf[len] = '\0';
	assert_string_equal(buf, want);
	close(fd);
}

static long long our_client_id(void)
{
	static const char *const id[] = {"CLIENT", "ID"};
	struct cache_reply *r = cache_cmd(2, id, NULL);
	long long v;

	assert_non_null(r);
	v = cache_reply_int(r);
	cache_reply_free(r);
	return v;
}

/* The server closes the connection after a command was wholly sent, before
 * replying, made to happen on the real server (Redis 7.0, checked with
 * CLIENT LIST while it happens):
 *   - a write: CLIENT PAUSE WRITE makes Redis read our SET and hold it
 *     (flags=b, cmd=set, qbuf=0); the admin connection then waits in a
 *     read-only XREAD BLOCK (not paused) and kills us: Redis closes the
 *     connection (EOF) and the held SET never runs.  The call must fail, the
 *     SET must not be sent again, and the next call connects at once.
 *   - a read: a script busy for 300 ms keeps Redis from reading our GET;
 *     right after it the admin's CLIENT KILL closes the connection with the
 *     GET unread (ECONNRESET).  The GET is sent once more on a new
 *     connection and answers.
 * The cache timeout is raised so the waits are not read timeouts. */
static void test_cache_lost_reply(void **state)
{
	static const char *const del[] = {"DEL", "th:unit:lost"};
	static const char *const set[] = {"SET", "th:unit:lost", "w"};
	static const char *const get[] = {"GET", "th:unit:lost"};
	static const char *const put[] = {"SET", "th:unit:lost", "r", "EX", "60"};
	static const char busy[] =
		"EVAL \"local t=redis.call('TIME') local s=t[1]*1000000+t[2] "
		"repeat t=redis.call('TIME') until t[1]*1000000+t[2]-s>300000 return 1\" 0";
	char kill[64];
	const char *write_case[] = {"CLIENT PAUSE 3000 WRITE",
				    "XREAD BLOCK 500 STREAMS th:unit:nostream $", kill,
				    "CLIENT UNPAUSE"};
	const char *read_case[] = {busy, kill};
	struct cache_reply *r;
	long long id, id2;
	size_t len;
	double t0;
	int fd;

	(void)state;
	cache_close();
	assert_int_equal(cache_init(getenv("TH_REDIS_HOST") ? getenv("TH_REDIS_HOST") : "127.0.0.1",
				    atoi(getenv("TH_REDIS_PORT")), 3000),
			 0);
	r = cache_cmd(2, del, NULL);
	assert_non_null(r);
	cache_reply_free(r);

	/* a write */
	id = our_client_id();
	snprintf(kill, sizeof(kill), "CLIENT KILL ID %lld", id);
	fd = admin_send(write_case, 4);
	usleep(50 * 1000); /* the pause is on before our SET arrives */
	assert_null(cache_cmd(3, set, NULL));
	admin_replies(fd, "+OK\r\n*-1\r\n:1\r\n+OK\r\n"); /* paused, waited, killed us */
	t0 = now_s();
	r = cache_cmd(2, get, NULL);
	assert_true(now_s() - t0 < 0.05); /* no backoff */
	assert_non_null(r);
	assert_int_equal(cache_reply_type(r), CACHE_NIL); /* the SET ran neither once nor twice */
	cache_reply_free(r);
	assert_true(our_client_id() != id);

	/* a read */
	r = cache_cmd(5, put, NULL);
	assert_non_null(r);
	cache_reply_free(r);
	id = our_client_id();
	snprintf(kill, sizeof(kill), "CLIENT KILL ID %lld", id);
	fd = admin_send(read_case, 2);
	usleep(50 * 1000); /* the script runs before our GET arrives */
	r = cache_cmd(2, get, NULL);
	admin_replies(fd, ":1\r\n:1\r\n"); /* the script ended, we were killed */
	assert_non_null(r);
	assert_memory_equal(cache_reply_str(r, &len), "r", 1);
	assert_int_equal(len, 1);
	cache_reply_free(r);
	id2 = our_client_id();
	assert_true(id2 != id); /* answered on a new connection */
	cache_reinit();
}

/* rl_take: a burst of 3 at one every 200 ms; the 4th is refused with a wait,
 * a forced take overdraws, and the key empties itself. */
static void test_rl_take(void **state)
{
	static const char *const del[] = {"DEL", "th:unit:rl"};
	static const char *const pttl[] = {"PTTL", "th:unit:rl"};
	struct rl_state st;
	struct cache_reply *r;

	(void)state;
	cache_reply_free(cache_cmd(2, del, NULL));
	for (int i = 0; i < 3; i++) {
		assert_int_equal(rl_take("th:unit:rl", 200, 3, 1, 0, &st), 1);
		assert_int_equal(st.count, 2 - i);
	}
	assert_int_equal(rl_take("th:unit:rl", 200, 3, 1, 0, &st), 0);
	assert_int_equal(st.retry_after_s, 1);
	/* two at once cannot fit where one does not */
	assert_int_equal(rl_take("th:unit:rl", 200, 3, 2, 0, &st), 0);
	/* a forced take books hits already let through: the bucket goes below empty */
	assert_int_equal(rl_take("th:unit:rl", 200, 3, 5, 1, &st), 1);
	assert_true(st.count < 0);
	r = cache_cmd(2, pttl, NULL);
	assert_non_null(r);
	/* full again after 3 + 5 tokens of 200 ms: the key lives no longer */
	assert_true(cache_reply_int(r) > 1000 && cache_reply_int(r) <= 1600);
	cache_reply_free(r);
	assert_int_equal(rl_take("th:unit:rl", 200, 3, 1, 0, &st), 0);
	assert_true(st.retry_after_s >= 1);
	assert_int_equal(rl_take("th:unit:rl", 0, 3, 1, 0, &st), -1);
	cache_reply_free(cache_cmd(2, del, NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_params),
		cmocka_unit_test(test_res_own),
		cmocka_unit_test(test_errors_and_transactions),
		cmocka_unit_test(test_prepared_reuse),
		cmocka_unit_test(test_reconnect_after_termination),
		cmocka_unit_test(test_terminated_mid_statement),
		cmocka_unit_test(test_dead_server_backoff),
		cmocka_unit_test(test_conninfo_malformed),
		cmocka_unit_test(test_host_names_resolved),
		cmocka_unit_test(test_prepare_off),
		cmocka_unit_test(test_read_only_server),
		cmocka_unit_test(test_slow_statement_cancelled),
		cmocka_unit_test(test_read_only_on_read_handle),
		cmocka_unit_test(test_tx_retry_after_statement_timeout),
		cmocka_unit_test(test_tx_retry_after_deadlock),
		cmocka_unit_test(test_exec_retry_after_conflict),
		cmocka_unit_test(test_cache),
		cmocka_unit_test(test_cache_dead_server),
		cmocka_unit_test(test_cache_auth),
		cmocka_unit_test(test_cache_closed_while_idle),
		cmocka_unit_test(test_cache_lost_reply),
		cmocka_unit_test(test_rl_take),
	};

	return cmocka_run_group_tests_name("db+cache (live servers)", tests, setup, teardown);
}
