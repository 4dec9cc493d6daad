/* dbtx: one pipelined transaction at a time on a connection of its own
 * (db_tx_* in lib/db.h: the bridge commits a batch while it reads the
 * next).
 *
 * A transaction the server rolled back for a deadlock, a serialization
 * failure or its statement timeout is sent again, at most TH_DB_RETRIES
 * times within TH_DB_RETRY_MS of the first send, after a jittered pause
 * (dbconn_retry_delay).  That is safe whatever the statements do: the
 * server says nothing of the transaction happened.  The pause is a timer
 * the caller polls as db_tx_fd(), so its loop goes on meanwhile.  A
 * connection lost under the transaction is not retried here: whether it
 * committed is unknown (the caller's idempotent statements and its own
 * retry handle that). */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "db.h"
#include "dbpriv.h"
#include "log.h"
#include "mono.h"

#define DB_TX_STMTS_MAX 8

static struct dbconn txh = {.name = "pipeline"};
static int tx_out;      /* a transaction is sent, its Sync not yet answered */
static int tx_flushing; /* libpq still holds some of it (PQflush said 1) */
static int tx_nstmts, tx_nres, tx_failed;
static PGresult *tx_last; /* the last statement's result, once it arrived */

/* The transaction out, kept to be sent again: the statements (literals, as
 * the prepare cache needs them) and a copy of their parameters (the
 * caller's may be gone once db_tx_send returns). */
static struct {
	const char *sqls[DB_TX_STMTS_MAX];
	int nparams[DB_TX_STMTS_MAX];
	const char *const *params[DB_TX_STMTS_MAX]; /* into buf */
	char *buf;                                  /* owned: pointers then strings */
} tx_copy;
static long long tx_started_ms; /* the first send (the retry budget) */
static int tx_retries;          /* sent again so often */
static int tx_waiting;          /* in the pause before the next send */
static int tx_timer = -1;       /* timerfd of the pause; made once */

/* One attempt's state, for the next attempt (or none). */
static void attempt_reset(void)
{
	PQclear(tx_last);
	tx_last = NULL;
	tx_out = tx_flushing = tx_nres = tx_failed = tx_waiting = 0;
}

/* The whole transaction is over: its copy goes too. */
static void tx_reset(void)
{
	attempt_reset();
	free(tx_copy.buf);
	memset(&tx_copy, 0, sizeof(tx_copy));
	tx_retries = 0;
}

void db_tx_close(void)
{
	tx_reset();
	if (tx_timer >= 0)
		close(tx_timer);
	tx_timer = -1;
	dbconn_release(&txh, "pipeline");
}

/* Copies the transaction into tx_copy; -1 when out of memory. */
static int tx_keep(int nstmts, const char *const *sqls, const int *nparams,
		   const char *const *const *params)
{
	size_t ptrs = 0, bytes = 0;
	const char **p;
	char *q;

	for (int i = 0; i < nstmts; i++) {
		ptrs += (size_t)nparams[i];
		for (int k = 0; k < nparams[i]; k++)
			bytes += params[i][k] ? strlen(params[i][k]) + 1 : 0;
	}
	tx_copy.buf = malloc(ptrs * sizeof(*p) + bytes + 1);
	if (!tx_copy.buf) {
		dbres_set_err(TH_EINTERNAL, "out of memory", NULL);
		return -1;
	}
	p = (const char **)(void *)tx_copy.buf;
	q = tx_copy.buf + ptrs * sizeof(*p);
	for (int i = 0; i < nstmts; i++) {
		tx_copy.sqls[i] = sqls[i];
		tx_copy.nparams[i] = nparams[i];
		tx_copy.params[i] = p;
		for (int k = 0; k < nparams[i]; k++) {
			if (!params[i][k]) {
				*p++ = NULL; /* SQL NULL */
				continue;
			}
			size_t n = strlen(params[i][k]) + 1;

			memcpy(q, params[i][k], n);
			*p++ = q;
			q += n;
		}
	}
	return 0;
}

/* Arms the pause of delay_ms; -1 when no timer can be had (then the
 * failure stands). */
static int pause_start(long delay_ms)
{
	struct itimerspec its = {.it_value = {.tv_sec = delay_ms / 1000,
					      .tv_nsec = (delay_ms % 1000) * 1000000L + 1}};

	if (tx_timer < 0)
		tx_timer = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (tx_timer < 0 || timerfd_settime(tx_timer, 0, &its, NULL) < 0) {
		log_warn("db pipeline: no timer for a retry: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/* 1 once the pause is over (the timer read), 0 before. */
static int pause_over(void)
{
	uint64_t n;

	return read(tx_timer, &n, sizeof(n)) == (ssize_t)sizeof(n);
}

int db_tx_busy(void)
{
	return tx_out;
}
int db_tx_fd(void)
{
	if (tx_waiting)
		return tx_timer;
	return txh.conn ? PQsocket(txh.conn) : -1;
}
short db_tx_events(void)
{
	if (tx_waiting)
		return POLLIN;
	return (short)(tx_out ? POLLIN | (tx_flushing ? POLLOUT : 0) : 0);
}

/* Sends tx_copy (an attempt): 0, or -1 with the error set and the attempt's
 * state reset (the caller ends the transaction). */
static int tx_start(void)
{
	char names[DB_TX_STMTS_MAX][16];
	const char *stmt[DB_TX_STMTS_MAX];
	const char *const *sqls = tx_copy.sqls;
	const int *nparams = tx_copy.nparams;
	const char *const *const *params = tx_copy.params;
	int nstmts = tx_nstmts;
	long long deadline;
	PGconn *c;
	int i, f, io;

	if (!txh.conninfo) {
		const char *primary = dbconn_role(DB_PRIMARY)->conninfo;

		txh.conninfo = primary ? strdup(primary) : NULL;
		if (!txh.conninfo) {
			dbres_set_err(TH_EUNAVAILABLE, "database not configured", NULL);
			return -1;
		}
	}
	c = dbconn_get(&txh); /* idle here: a readable socket means a dead one */
	if (!c)
		return -1;
	/* prepared once per connection, before pipeline mode; unnamed when
	 * preparing is off (TH_DB_PREPARE=0) or did not work (then the
	 * transaction reports the statement's error) */
	deadline = dbconn_deadline();
	for (i = 0; i < nstmts; i++) {
		stmt[i] = dbexec_prepared(&txh, sqls[i], nparams[i], names[i], sizeof(names[i]),
					  deadline, &io);
		if (io != DB_IO_OK) {
			/* broken or silent: what it holds is unknown, so it goes */
			dbres_set_err(TH_EUNAVAILABLE,
				      io == DB_IO_TIMEOUT ? "no answer from the database"
							  : PQerrorMessage(c),
				      NULL);
			dbconn_fail(&txh, db_last_error());
			attempt_reset();
			return -1;
		}
	}
	if (PQsetnonblocking(c, 1) != 0 || PQenterPipelineMode(c) != 1)
		goto fail;
	for (i = 0; i < nstmts; i++)
		if (!(stmt[i] ? PQsendQueryPrepared(c, stmt[i], nparams[i], params[i], NULL, NULL,
						    0)
			      : PQsendQueryParams(c, sqls[i], nparams[i], NULL, params[i], NULL,
						  NULL, 0)))
			goto fail;
	if (!PQpipelineSync(c) || (f = PQflush(c)) < 0)
		goto fail;
	attempt_reset();
	tx_out = 1;
	tx_flushing = f;
	return 0;
fail:
	/* a connection that broke: back off as for any outage; a statement that
	 * cannot be prepared on a sound one is not an outage: keep the
	 * connection, or drop it without back-off when a pipeline was begun */
	dbres_set_err(PQstatus(c) == CONNECTION_OK ? TH_EINTERNAL : TH_EUNAVAILABLE,
		      PQerrorMessage(c), NULL);
	if (PQstatus(c) != CONNECTION_OK)
		dbconn_fail(&txh, db_last_error());
	else if (PQpipelineStatus(c) != PQ_PIPELINE_OFF)
		dbconn_drop(&txh);
	attempt_reset();
	return -1;
}

int db_tx_send(int nstmts, const char *const *sqls, const int *nparams,
	       const char *const *const *params)
{
	if (tx_out || nstmts < 1 || nstmts > DB_TX_STMTS_MAX) {
		dbres_set_err(TH_EINTERNAL,
			      "db_tx_send: a transaction is out, or too many statements", NULL);
		return -1;
	}
	tx_reset();
	if (tx_keep(nstmts, sqls, nparams, params) < 0)
		return -1;
	tx_nstmts = nstmts;
	tx_started_ms = (long long)mono_ms();
	if (tx_start() < 0) {
		tx_reset();
		return -1;
	}
	return 0;
}

/* The transaction failed with a SQLSTATE that says the server rolled it
 * back (a deadlock, a serialization failure, its statement timeout): 1 when
 * a retry is scheduled, 0 when none is left (then 503-worthy). */
static int retry_scheduled(void)
{
	const char *state = db_last_sqlstate();
	long delay;

	if (!dbconn_state_is_conflict(state) && strcmp(state, "57014") != 0)
		return 0;
	dbres_set_code(TH_EUNAVAILABLE); /* not the statements' fault: 503 */
	delay = dbconn_retry_delay(tx_retries, tx_started_ms);
	if (delay < 0 || pause_start(delay) < 0)
		return 0;
	log_info("db pipeline: %s (%s); again in %ld ms", state, db_last_error(), delay);
	tx_retries++;
	attempt_reset();
	tx_out = 1; /* still the caller's transaction out */
	tx_waiting = 1;
	return 1;
}

int db_tx_poll(struct db_res **last)
{
	PGconn *c = txh.conn;
	int nulls = 0, done = 0;

	*last = NULL;
	if (tx_waiting) {
		if (!pause_over())
			return 0;
		if (tx_start() < 0) {
			tx_reset();
			return -1;
		}
		return 0;
	}
	if (!tx_out || !c) {
		dbres_set_err(TH_EUNAVAILABLE, "no transaction out", NULL);
		tx_reset();
		return -1;
	}
	if (tx_flushing && (tx_flushing = PQflush(c)) < 0)
		goto lost;
	if (!PQconsumeInput(c) || PQstatus(c) != CONNECTION_OK)
		goto lost;
	/* results arrive as: each statement's result then NULL, and the Sync's;
	 * two NULLs in a row would mean nothing more is coming (a bug, not a
	 * wait), so they end the loop rather than spin */
	while (!done && nulls < 2 && !PQisBusy(c)) {
		PGresult *r = PQgetResult(c);
		ExecStatusType st;

		if (!r) {
			nulls++;
			continue;
		}
		nulls = 0;
		st = PQresultStatus(r);
		if (st == PGRES_PIPELINE_SYNC) {
			done = 1;
			PQclear(r);
		} else if ((st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) && !tx_failed) {
			if (++tx_nres == tx_nstmts) {
				PQclear(tx_last);
				tx_last = r;
			} else {
				PQclear(r);
			}
		} else {
			/* the first error says why; the statements after it come back
			 * PGRES_PIPELINE_ABORTED and the transaction is rolled back */
			if (!tx_failed)
				dbres_set_err(TH_EINTERNAL,
					      st == PGRES_PIPELINE_ABORTED
						      ? "pipeline aborted"
						      : PQresultErrorMessage(r),
					      PQresultErrorField(r, PG_DIAG_SQLSTATE));
			tx_failed = 1;
			PQclear(r);
		}
	}
	if (!done)
		return 0;
	if (PQexitPipelineMode(c) != 1)
		goto lost;
	if (tx_failed && dbconn_state_is_server(db_last_sqlstate())) {
		/* a standby after a failover, a server shutting down: the next
		 * send connects anew (and finds the primary of a multi-host
		 * conninfo) */
		dbres_set_code(TH_EUNAVAILABLE);
		dbconn_forget(&txh, db_last_error());
		tx_reset();
		return -1;
	}
	if (tx_failed && retry_scheduled())
		return 0;
	if (tx_failed || tx_nres != tx_nstmts || !tx_last) {
		if (!tx_failed)
			dbres_set_err(TH_EINTERNAL, "transaction ended without every result", NULL);
		tx_reset();
		return -1;
	}
	*last = dbres_wrap(tx_last); /* takes tx_last, even when out of memory */
	tx_last = NULL;
	tx_reset();
	return *last ? 1 : -1;
lost:
	/* the commit's fate is unknown: the caller treats it as not done, and
	 * idempotent inserts make a retry safe either way */
	dbres_set_err(TH_EUNAVAILABLE, PQerrorMessage(c), NULL);
	dbconn_fail(&txh, db_last_error());
	tx_reset();
	return -1;
}
