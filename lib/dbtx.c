/* dbtx: one pipelined transaction at a time on a connection of its own
 * (db_tx_* in lib/db.h: the bridge commits a batch while it reads the
 * next). */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "dbpriv.h"

#define DB_TX_STMTS_MAX 8

static struct dbconn txh = {.name = "pipeline"};
static int tx_out;      /* a transaction is sent, its Sync not yet answered */
static int tx_flushing; /* libpq still holds some of it (PQflush said 1) */
static int tx_nstmts, tx_nres, tx_failed;
static PGresult *tx_last; /* the last statement's result, once it arrived */

static void tx_reset(void)
{
	PQclear(tx_last);
	tx_last = NULL;
	tx_out = tx_flushing = tx_nres = tx_failed = 0;
}

void db_tx_close(void)
{
	tx_reset();
	dbconn_release(&txh, "pipeline");
}

int db_tx_busy(void)
{
	return tx_out;
}
int db_tx_fd(void)
{
	return txh.conn ? PQsocket(txh.conn) : -1;
}
short db_tx_events(void)
{
	return (short)(tx_out ? POLLIN | (tx_flushing ? POLLOUT : 0) : 0);
}

int db_tx_send(int nstmts, const char *const *sqls, const int *nparams,
	       const char *const *const *params)
{
	char names[DB_TX_STMTS_MAX][16];
	const char *stmt[DB_TX_STMTS_MAX];
	long long deadline;
	PGconn *c;
	int i, f, io;

	if (tx_out || nstmts < 1 || nstmts > DB_TX_STMTS_MAX) {
		dbres_set_err(TH_EINTERNAL,
			      "db_tx_send: a transaction is out, or too many statements", NULL);
		return -1;
	}
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
			tx_reset();
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
	tx_reset();
	tx_out = 1;
	tx_flushing = f;
	tx_nstmts = nstmts;
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
	tx_reset();
	return -1;
}

int db_tx_poll(struct db_res **last)
{
	PGconn *c = txh.conn;
	int nulls = 0, done = 0;

	*last = NULL;
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
