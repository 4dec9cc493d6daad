/* db: PostgreSQL through libpq, the only module that includes libpq-fe.h.
 * Its files: db.c (set-up), dbconn.c (connections, conninfo, failover),
 * dbexec.c (statements, the auto-prepare cache, transactions), dbres.c
 * (results and the last error), dblisten.c (LISTEN), dbtx.c (pipelined
 * transactions); dbpriv.h is what they share.
 *
 * A worker holds two handles: DB_PRIMARY for writes and DB_READ for reads
 * that may be a little stale.  DB_READ is the primary unless a replica is
 * configured.  Connections are opened lazily and re-opened after a failure
 * with exponential backoff (100 ms doubling to 5 s); while a handle is in
 * backoff, calls fail at once with TH_EUNAVAILABLE instead of waiting for a
 * connect timeout on every request.
 *
 * A connection the server closed (PostgreSQL restarted, pg_terminate_backend,
 * an idle timeout) is not "database down": it is replaced at once, without
 * backoff, and the request goes on.
 *   - Before each statement outside a transaction, a poll() of the idle
 *     socket finds the server's goodbye (or EOF) already queued: the
 *     statement goes to a new connection.  This is the case after a restart.
 *   - If the connection breaks under the statement (the server closed it just
 *     after that check, or during the statement), the statement is sent once
 *     more on a new connection when it certainly did not run (preparing it
 *     or handing it to libpq failed) or when it may run twice: anything on
 *     the DB_READ handle, BEGIN, db_ping().  Otherwise (a write on the
 *     primary that may have run, COMMIT) the call fails with TH_EUNAVAILABLE
 *     and only this request sees it; the next call connects at once.
 *   - Inside a transaction, the transaction is gone with the connection:
 *     that call and every later one on the primary fail (TH_EUNAVAILABLE)
 *     until db_rollback() ends it, so nothing of it runs outside it.
 * A failure on a connection made by the same call, or a reconnect that
 * fails, starts the backoff: a server really down costs one refused connect,
 * then calls fail at once.  db_listen and db_tx_* keep their own rules below.
 *
 * Bounds.  Each conninfo (key=value or URI, multi-host allowed) gets what it
 * does not set itself (PQconninfoParse tells): connect_timeout
 * (TH_DB_CONNECT_TIMEOUT_S, 2), tcp_user_timeout (TH_DB_TCP_USER_TIMEOUT_MS,
 * 5000), keepalives=1 with TH_DB_KEEPALIVES_IDLE_S / _INTERVAL_S / _COUNT
 * (10, 5, 3).  Every call (its prepare and statement; a new connection's
 * SET statement_timeout) is sent without blocking and waited for until the
 * statement timeout + 1 s: a network that swallows without closing is bound
 * by nothing else.  A call that hears nothing by then fails with
 * TH_EUNAVAILABLE and its connection is never used again (inside a
 * transaction: as a broken one).  Whether the server is there is asked with
 * a new connection, made within connect_timeout: if it comes, the statement
 * was only slow: the old backend is terminated from it (same server only)
 * and it replaces the old one, without backoff; if not, the handle backs
 * off.  A statement timeout of 0: no bound.
 *
 * Not the primary any more.  SQLSTATE 25006 (a standby, after a failover;
 * not on the read handle, which may be a standby by design: there it is the
 * caller's mistake, TH_EINTERNAL, and the connection stays),
 * 57P01/57P02 (shutdown), 57P03 (starting up) and 08xxx drop the connection
 * and fail with TH_EUNAVAILABLE (503), never TH_EINTERNAL; outside a
 * transaction, a statement that cannot have run (25006, 57P03) or a rerun-able
 * one is sent once more on a new connection, which a multi-host conninfo
 * with target_session_attrs=read-write points at the new primary.  A new
 * connection that answers so too starts the backoff.
 *
 * Conflicts and timeouts.  A deadlock or a serialization failure (40P01,
 * 40001) and the statement timeout (57014) fail with TH_EUNAVAILABLE (503
 * with Retry-After), never TH_EINTERNAL.  The server rolled back what it
 * refused, so it is sent again where that is safe: a statement alone
 * (autocommit) after a deadlock or serialization failure, and a pipelined
 * transaction (db_tx_*) after any of the three; at most TH_DB_RETRIES (3)
 * times, each after a pause of 50 ms doubling (half of it random), all
 * within TH_DB_RETRY_MS (2000) of the first try.  Not inside a transaction
 * of db_begin() (it is gone: its caller answers 503 and the client sends
 * the request again), and a statement alone is not sent again after its
 * timeout (the worker would wait another statement timeout).
 *
 * Every statement is parameterized (PQexecParams); no SQL is built from
 * input.  Statements with parameters are prepared once per connection
 * (named th0, th1, ...) unless TH_DB_PREPARE=0: then unnamed statements only
 * and no session SET, for PgBouncer in transaction mode.  Results are owned
 * by the caller: db_res_free() (NULL-safe). */
#ifndef TH_DB_H
#define TH_DB_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

struct arena;

enum db_role { DB_PRIMARY = 0, DB_READ = 1 };

struct db_res;

/* primary: libpq conninfo (required); read: conninfo of a replica or NULL/"".
 * statement_timeout_ms: applied to each new connection (0: server default),
 * and the client-side bound of a call is it + 1 s.  Reads the TH_DB_*
 * settings above (exits on a malformed one, as every cfg_* getter).  Does
 * not connect: the first query does (a malformed conninfo fails it). */
int db_init(const char *primary, const char *read, long statement_timeout_ms);
void db_close(void);

/* Runs sql with n text parameters (NULL for SQL NULL).  Returns a result of
 * a successful command, or NULL; then db_last_err() tells why:
 * TH_EUNAVAILABLE (no connection), TH_ECONFLICT (unique violation),
 * TH_EINTERNAL (anything else), and db_last_error() has the server's text. */
struct db_res *db_exec(enum db_role role, const char *sql, int n, const char *const *params);
/* Hands r (a db_exec() result, or NULL) to arena a: it is released with
 * the arena (arena_defer), so its owner never frees it; db_res_free() may
 * still release it early, in a loop of many.  Returns r, or NULL when r was
 * NULL or memory is short (then r is freed and db_last_err() is
 * TH_EINTERNAL).  The web library's db_exec_or_reply() and db_own()
 * (fcgi-apps/lib/reply.h) give results to the request's arena with it. */
struct db_res *db_res_own(struct arena *a, struct db_res *r);

enum th_err db_last_err(void);
const char *db_last_error(void);      /* message; static buffer */
const char *db_last_sqlstate(void);   /* "23505", or "" */
const char *db_last_constraint(void); /* constraint of a violation, or "" */

int db_res_rows(const struct db_res *r);
int db_res_cols(const struct db_res *r);
/* Text value of a cell; "" for NULL.  Lives as long as the result. */
const char *db_res_get(const struct db_res *r, int row, int col);
int db_res_isnull(const struct db_res *r, int row, int col);
/* Rows affected by an INSERT/UPDATE/DELETE. */
long long db_res_affected(const struct db_res *r);
void db_res_free(struct db_res *r);

/* Transactions on the primary: 0 or -1 (db_last_err() set). */
int db_begin(void);
int db_commit(void);
void db_rollback(void);
/* BEGIN, then the transaction-local setting townhall.actor_id = actor (when
 * actor > 0): who acts, for the database's triggers (the modlog of
 * db/migrations/0033_moderation.sql writes its entry from them and refuses a
 * moderator action with no actor; the role notification names it).  0 or
 * -1 (db_last_err() set; the transaction may be open: db_rollback()). */
int db_begin_as(int64_t actor);
/* BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY: one snapshot for a
 * long read in several statements (an export), no writes, so no actor. */
int db_begin_snapshot(void);
/* SELECT 1 on the handle: 0 when the database answers, -1 otherwise. */
int db_ping(enum db_role role);

/* LISTEN on a connection of its own (the bridge's wake-up for the event
 * outbox).  db_listen() (re)connects when needed and issues LISTEN channel;
 * 0 or -1.  db_listen_fd() is its socket for poll (-1 when down).
 * db_listen_drain() consumes what arrived and returns the number of
 * notifications, or -1 when the connection broke (call db_listen again). */
int db_listen(const char *channel);
int db_listen_fd(void);
int db_listen_drain(void);

/* One transaction at a time sent without waiting, on a connection of its
 * own (the bridge commits a batch while it reads the next).  db_tx_send()
 * pipelines nstmts prepared statements (sqls[i] with nparams[i] text
 * parameters params[i]) and a Sync: they run as one implicit transaction,
 * committed — durably, as any commit — before the Sync is answered, and
 * rolled back whole when one fails.  0 when sent (or still being flushed),
 * -1 on failure (db_last_error()).  While a transaction is out, poll
 * db_tx_fd() for db_tx_events() and call db_tx_poll(): 0 still running,
 * 1 committed (*last = the last statement's result, the caller's to free),
 * -1 failed (rolled back, db_last_error() says why; a broken connection is
 * reopened by the next send, with the usual backoff).  A transaction the
 * server rolled back for a conflict or its statement timeout is sent again
 * (see "Conflicts and timeouts" above; the parameters are copied, so the
 * caller's may go once db_tx_send returns): meanwhile db_tx_poll() answers
 * 0 and db_tx_fd() is a timer that becomes readable when the pause ends. */
int db_tx_send(int nstmts, const char *const *sqls, const int *nparams,
	       const char *const *const *params);
int db_tx_busy(void);
int db_tx_fd(void);
short db_tx_events(void);
int db_tx_poll(struct db_res **last);
void db_tx_close(void);

#endif
