/* dbexec: statements on the role handles: the per-connection cache of
 * prepared statements, one statement run with a bound, what a failure means
 * (rerun on a new connection, 503, 409, 500), and BEGIN/COMMIT/ROLLBACK. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db.h"
#include "dbpriv.h"
#include "log.h"
#include "mono.h"

/* The statement name for sql on h, preparing it on first use; NULL when
 * preparing is off (TH_DB_PREPARE=0), the table is full or preparing failed
 * (then the caller runs it unprepared), or the connection failed (*io). */
const char *dbexec_prepared(struct dbconn *h, const char *sql, int n, char *name, size_t size,
			    long long deadline, int *io)
{
	PGresult *r;
	int i;

	*io = DB_IO_OK;
	if (!dbconn_prepare_on())
		return NULL; /* unnamed statements only: PgBouncer's transaction mode */
	for (i = 0; i < h->nprepared; i++) {
		if (h->prepared[i] == sql) {
			snprintf(name, size, "th%d", i);
			return name;
		}
	}
	if (h->nprepared >= DB_PREPARED_MAX)
		return NULL;
	snprintf(name, size, "th%d", h->nprepared);
	if (!PQsendPrepare(h->conn, name, sql, n, NULL)) {
		*io = DB_IO_BROKEN;
		return NULL;
	}
	r = dbconn_collect(h->conn, deadline, io);
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		PQclear(r);
		return NULL; /* the unprepared run reports the error */
	}
	PQclear(r);
	h->prepared[h->nprepared++] = sql;
	return name;
}

/* Runs one statement as PQexecParams would, in two halves so that a
 * failure tells how far it got: *sent is 0 while nothing of it can have run
 * (preparing it, or handing it to libpq, failed), 1 once it was sent.  *io
 * says whether the connection broke or stayed silent past the deadline.
 * Returns the first error result, else the last result; NULL when none. */
static PGresult *run(struct dbconn *h, PGconn *c, const char *sql, int n, const char *const *params,
		     long long deadline, int *sent, int *io)
{
	char name[16];
	/* BEGIN/COMMIT and friends gain nothing from preparing */
	const char *stmt = NULL;

	*sent = 0;
	*io = DB_IO_OK;
	if (n > 0)
		stmt = dbexec_prepared(h, sql, n, name, sizeof(name), deadline, io);
	if (*io != DB_IO_OK || PQstatus(c) != CONNECTION_OK)
		return NULL; /* lost while preparing */
	if (!(stmt ? PQsendQueryPrepared(c, stmt, n, params, NULL, NULL, 0)
		   : PQsendQueryParams(c, sql, n, NULL, params, NULL, NULL, 0)))
		return NULL;
	*sent = 1;
	return dbconn_collect(c, deadline, io);
}

static void nap_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* db_exec; rerun: the statement may run twice (a read, BEGIN), so it is sent
 * again once on a new connection when the old one broke under it. */
static struct db_res *exec(enum db_role role, const char *sql, int n, const char *const *params,
			   int rerun)
{
	struct dbconn *h = dbconn_role(role);
	unsigned long connects = h->connects;
	long long deadline, started = (long long)mono_ms();
	int in_tx, sent, io, tries = 0, conflicts = 0;
	long delay;
	PGresult *r;
	ExecStatusType st;
	const char *state;
	PGconn *c;

	if (h->tx_lost) {
		dbres_set_err(TH_EUNAVAILABLE, "database connection lost inside the transaction",
			      NULL);
		return NULL;
	}
again:
	/* each attempt has the whole bound: a retry after a server that went
	 * away late in the first must not start with its time already spent */
	deadline = dbconn_deadline();
	c = dbconn_get(h);
	if (!c)
		return NULL;
	in_tx = PQtransactionStatus(c) != PQTRANS_IDLE;
	r = run(h, c, sql, n, params, deadline, &sent, &io);
	st = PQresultStatus(r);
	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
		return dbres_wrap(r);
	}
	if (io == DB_IO_TIMEOUT) {
		/* a server (or a network) that says nothing: its state is unknown,
		 * so the connection goes, and the next calls back off rather than
		 * each waiting out the deadline again */
		char why[96];

		snprintf(why, sizeof(why), "no answer within %ld ms", dbconn_client_timeout_ms());
		PQclear(r);
		h->tx_lost = in_tx;
		if (dbconn_replace_slow(h) == 0) {
			/* the server answers: only this statement was slow */
			dbres_set_err(TH_EUNAVAILABLE, why, NULL);
			return NULL;
		}
		dbres_set_err(TH_EUNAVAILABLE, why, NULL);
		dbconn_fail(h, db_last_error());
		return NULL;
	}
	state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	if (io == DB_IO_BROKEN || PQstatus(c) != CONNECTION_OK) {
		dbres_set_err(TH_EUNAVAILABLE, PQerrorMessage(c), state);
		PQclear(r);
		if (h->connects != connects) {
			/* a connection made for this call failing: the server is in
			 * trouble, back off */
			dbconn_fail(h, db_last_error());
			return NULL;
		}
		/* An old connection the server closed under the statement (it
		 * ended the session in the instant after conn_stale() looked,
		 * or during the statement): not "database down", so no backoff. */
		if (in_tx) {
			/* the transaction is gone with it; what the request does next
			 * must not run outside it */
			h->tx_lost = 1;
			dbconn_forget(h, db_last_error());
			return NULL;
		}
		if (tries++ == 0 && (!sent || rerun)) {
			dbconn_forget(h, db_last_error());
			goto again;
		}
		log_warn("db %s: %s after the statement was sent: not retried (it may have run)",
			 h->name, db_last_error());
		dbconn_forget(h, "connection closed by the server");
		return NULL;
	}
	dbres_set_constraint(r ? PQresultErrorField(r, PG_DIAG_CONSTRAINT_NAME) : NULL);
	if (state && strcmp(state, "23505") == 0) {
		dbres_set_err(TH_ECONFLICT, PQresultErrorMessage(r), state);
	} else if (state && strcmp(state, "25006") == 0 && dbconn_is_replica(h)) {
		/* the read handle reaches a standby by design (prefer-standby):
		 * a write sent on it is the caller's mistake, not a failover;
		 * replacing the connection would land on a standby again */
		dbres_set_err(TH_EINTERNAL, PQresultErrorMessage(r), state);
	} else if (state && dbconn_state_is_server(state)) {
		/* a standby or a server starting refused before running anything */
		int did_not_run = strcmp(state, "25006") == 0 || strcmp(state, "57P03") == 0;

		dbres_set_err(TH_EUNAVAILABLE, PQresultErrorMessage(r), state);
		PQclear(r);
		h->tx_lost = in_tx; /* the transaction goes with the connection */
		if (h->connects != connects) {
			/* a connection made for this call says so too: back off */
			dbconn_fail(h, db_last_error());
			return NULL;
		}
		dbconn_forget(h, db_last_error());
		if (!in_tx && tries++ == 0 && (did_not_run || rerun))
			goto again;
		return NULL;
	} else if (dbconn_state_is_conflict(state)) {
		/* A deadlock or a serialization failure: the server rolled the
		 * statement back.  Alone (autocommit) it is sent again after a
		 * jittered pause, a few times within TH_DB_RETRY_MS; inside a
		 * transaction the whole transaction is gone and only its caller
		 * can run it again (the request answers 503 with Retry-After). */
		dbres_set_err(TH_EUNAVAILABLE, PQresultErrorMessage(r), state);
		PQclear(r);
		if (!in_tx && (delay = dbconn_retry_delay(conflicts++, started)) >= 0) {
			log_info("db %s: %s; again in %ld ms", h->name, db_last_sqlstate(), delay);
			nap_ms(delay);
			goto again;
		}
		return NULL;
	} else if (state && strcmp(state, "57014") == 0) {
		/* The statement timeout: 503.  Not sent again here: the worker
		 * would wait out another statement timeout for one request. */
		dbres_set_err(TH_EUNAVAILABLE, PQresultErrorMessage(r), state);
	} else {
		dbres_set_err(TH_EINTERNAL, r ? PQresultErrorMessage(r) : PQerrorMessage(c), state);
	}
	PQclear(r);
	return NULL;
}

struct db_res *db_exec(enum db_role role, const char *sql, int n, const char *const *params)
{
	/* the read handle only reads (it may be a replica) */
	return exec(role, sql, n, params, role == DB_READ);
}

static int db_simple(const char *sql, int rerun)
{
	struct db_res *r = exec(DB_PRIMARY, sql, 0, NULL, rerun);

	if (!r)
		return -1;
	db_res_free(r);
	return 0;
}

int db_begin(void)
{
	return db_simple("BEGIN", 1);
}

int db_begin_as(int64_t actor)
{
	char a[24];
	const char *params[] = {a};
	struct db_res *r;

	if (db_begin() < 0)
		return -1;
	if (actor <= 0)
		return 0;
	snprintf(a, sizeof(a), "%lld", (long long)actor);
	/* is_local: gone with the transaction, so a pooled connection (or
	 * PgBouncer's) never carries one request's actor into the next */
	r = exec(DB_PRIMARY, "SELECT set_config('townhall.actor_id', $1, true)", 1, params, 0);
	if (!r)
		return -1; /* the caller ends the transaction (db_rollback) */
	db_res_free(r);
	return 0;
}

int db_begin_snapshot(void)
{
	return db_simple("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY", 1);
}

int db_commit(void)
{
	return db_simple("COMMIT", 0);
}

void db_rollback(void)
{
	struct dbconn *h = dbconn_role(DB_PRIMARY);

	/* a transaction lost with its connection was rolled back by the server */
	h->tx_lost = dbconn_role(DB_READ)->tx_lost = 0;
	if (h->conn && PQtransactionStatus(h->conn) != PQTRANS_IDLE)
		(void)db_simple("ROLLBACK", 0);
}

int db_ping(enum db_role role)
{
	struct db_res *r = exec(role, "SELECT 1", 0, NULL, 1);

	if (!r)
		return -1;
	db_res_free(r);
	return 0;
}
