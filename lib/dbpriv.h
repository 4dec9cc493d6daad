/* dbpriv: what the files of the db module share (db.h is its public
 * face).  Only lib/db*.c include this header, and with it libpq-fe.h. */
#ifndef TH_DBPRIV_H
#define TH_DBPRIV_H

#include <libpq-fe.h>
#include <stddef.h>

#include "db.h"

#define DB_PREPARED_MAX 128

/* A parsed conninfo plus our defaults, as PQconnectdbParams takes it. */
struct db_params {
	PQconninfoOption *opts; /* owned (PQconninfoFree); kw/val point into it */
	const char **kw, **val; /* owned arrays, NULL-terminated */
};

/* dbhost.c: p's host names resolved within budget_ms (lib/resolve), as the
 * keyword/value arrays of one connect: `hostaddr` added beside `host`, the
 * names that did not resolve left out (with their ports).  0 with d->kw NULL
 * when there is nothing to resolve (use p as it is); 0 with d filled (free
 * it with dbhost_free after the connect started); -1 when no host is left,
 * why saying which names failed.  why holds the misses on success too. */
struct dbhost {
	const char **kw, **val; /* owned arrays; values point into p or buf */
	char *buf;              /* owned */
};
int dbhost_resolve(const struct db_params *p, long budget_ms, struct dbhost *d, char *why,
		   size_t whylen);
void dbhost_free(struct dbhost *d);

/* One connection and what it needs to come back (a role handle, the
 * listener, the pipeline). */
struct dbconn {
	const char *name;
	char *conninfo;          /* owned */
	struct db_params params; /* built from conninfo at the first connect */
	PGconn *conn;            /* NULL while disconnected */
	long backoff_ms;         /* current delay after a failure */
	long long retry_at_ms;   /* no connect attempt before this time */
	unsigned long connects;  /* connections made: tells a fresh one from an old one */
	/* The connection broke inside a transaction: its statements fail until
	 * db_rollback() ends it, so none runs outside it on a new connection. */
	int tx_lost;
	/* Statements prepared on this connection, keyed by the address of the
	 * SQL text: every query is a string literal, so one address is one
	 * statement, and a lookup costs no hashing of the text. */
	const char *prepared[DB_PREPARED_MAX];
	int nprepared;
};

/* ---- dbconn.c: connections ---- */

/* db_init's work: the role handles and the settings (TH_DB_*). */
int dbconn_init(const char *primary, const char *read, long statement_timeout_ms);
/* Closes the role handles and forgets their backoff. */
void dbconn_close(void);
/* Closes h, frees its conninfo and parameters, zeroes it, names it name. */
void dbconn_release(struct dbconn *h, const char *name);
/* The handle a role uses (DB_READ is the primary's when no replica is set). */
struct dbconn *dbconn_role(enum db_role role);
/* 1 when h is the replica's handle. */
int dbconn_is_replica(const struct dbconn *h);
/* The client-side bound of a call (statement timeout + 1 s; 0: none). */
long dbconn_client_timeout_ms(void);
/* TH_DB_PREPARE: 0 behind a transaction pooler. */
int dbconn_prepare_on(void);
/* The deadline of a call starting now (0: none). */
long long dbconn_deadline(void);

/* h's connection, connecting (or replacing a stale one) when needed; NULL
 * with the error set when unavailable (backing off, refused). */
PGconn *dbconn_get(struct dbconn *h);
/* Closes h's connection; its prepared statements go with it. */
void dbconn_drop(struct dbconn *h);
/* The server is in trouble: drop and back off (100 ms doubling to 5 s). */
void dbconn_fail(struct dbconn *h, const char *why);
/* The server closed the connection: drop it, no backoff. */
void dbconn_forget(struct dbconn *h, const char *why);
/* A statement ran past the client-side bound: replace h's connection when a
 * new one comes in time (terminating the old backend); 0 replaced, -1 not
 * (then backing off). */
int dbconn_replace_slow(struct dbconn *h);
/* 1 for a SQLSTATE that says "this server, not this statement" (25006,
 * 57P01-03, 08xxx). */
int dbconn_state_is_server(const char *state);
/* 1 for a serialization failure or a deadlock (40001, 40P01): the server
 * rolled the transaction back; it may be run again. */
int dbconn_state_is_conflict(const char *state);
/* The delay before retry number done + 1 of something started at
 * started_ms (the mono_ms() clock): DB_RETRY_BASE_MS doubling, half of it
 * random; -1 when TH_DB_RETRIES retries were made or the delay would end
 * past TH_DB_RETRY_MS after started_ms. */
long dbconn_retry_delay(int done, long long started_ms);

/* How a wait on the server ended. */
enum { DB_IO_OK = 0, DB_IO_BROKEN = 1, DB_IO_TIMEOUT = 2 };
/* Every result of what was sent on c, waiting at most until deadline: the
 * first error kept (else the last result); NULL when none came; *io says
 * why. */
PGresult *dbconn_collect(PGconn *c, long long deadline, int *io);

/* ---- dbexec.c: statements ---- */

/* The prepared statement name for sql on h (into name), preparing it on
 * first use; NULL to run it unprepared (preparing off or failed, the cache
 * full) or when the connection failed (*io). */
const char *dbexec_prepared(struct dbconn *h, const char *sql, int n, char *name, size_t size,
			    long long deadline, int *io);

/* ---- dbres.c: results and the last error ---- */

/* r as a result of ours (TH_OK recorded); NULL when out of memory (r is
 * cleared, the error set). */
struct db_res *dbres_wrap(PGresult *r);
/* Records why a call failed (msg cleaned for the log; state a SQLSTATE or
 * NULL). */
void dbres_set_err(enum th_err e, const char *msg, const char *state);
/* Changes the error code only, keeping the message. */
void dbres_set_code(enum th_err e);
/* The constraint a violation names (NULL: none). */
void dbres_set_constraint(const char *name);

/* ---- dblisten.c ---- */
void dblisten_close(void);

#endif
