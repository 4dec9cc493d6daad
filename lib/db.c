/* db: two lazily connected handles with backoff and stale-socket detection. */
#include "db.h"

#include <errno.h>
#include <arpa/inet.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "arena.h"
#include "config.h"
#include "log.h"
#include "mono.h"

#define DB_BACKOFF_MIN_MS 100
#define DB_BACKOFF_MAX_MS 5000
#define DB_PREPARED_MAX 128
/* what the client waits beyond the statement timeout before it gives up on a
 * server that says nothing (the server's own timeout answers first) */
#define DB_CLIENT_MARGIN_MS 1000
/* how often a wait on a TLS connection asks libpq for what TLS may hold */
#define DB_TLS_SLICE_MS 10

/* A parsed conninfo plus our defaults, as PQconnectdbParams takes it. */
struct db_params {
	PQconninfoOption *opts; /* owned (PQconninfoFree); kw/val point into it */
	const char **kw, **val; /* owned arrays, NULL-terminated */
};

struct db_handle {
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

struct db_res {
	PGresult *res;
	/* a result owned by an arena (db_res_own): the slot its arena cleanup
	 * frees it through; db_res_free() empties the slot.  NULL otherwise. */
	struct db_res **slot;
};

static struct db_handle handles[2];
static struct db_handle listener = {.name = "listener"};
static int read_is_primary = 1;
static long stmt_timeout_ms;
static long client_timeout_ms; /* 0: no client-side bound */
static int prepare_on = 1;     /* TH_DB_PREPARE */

/* Settings added to every conninfo that does not set them (db_init). */
enum { DEF_CONNECT, DEF_TCP_USER, DEF_KA, DEF_KA_IDLE, DEF_KA_INTERVAL, DEF_KA_COUNT, DEF_N };
static struct {
	const char *kw, *env;
	long long dflt, min, max;
	char val[24];
} defaults[DEF_N] = {
	[DEF_CONNECT] = {"connect_timeout", "TH_DB_CONNECT_TIMEOUT_S", 2, 1, 600, ""},
	[DEF_TCP_USER] = {"tcp_user_timeout", "TH_DB_TCP_USER_TIMEOUT_MS", 5000, 0, 600000, ""},
	[DEF_KA] = {"keepalives", NULL, 1, 1, 1, ""},
	[DEF_KA_IDLE] = {"keepalives_idle", "TH_DB_KEEPALIVES_IDLE_S", 10, 1, 7200, ""},
	[DEF_KA_INTERVAL] = {"keepalives_interval", "TH_DB_KEEPALIVES_INTERVAL_S", 5, 1, 600, ""},
	[DEF_KA_COUNT] = {"keepalives_count", "TH_DB_KEEPALIVES_COUNT", 3, 1, 100, ""},
};
static enum th_err last_err;
static char last_msg[256];
static char last_state[6];
static char last_constraint[64];

/* the monotonic clock as the signed milliseconds of the back-off sums */
static long long now_ms(void)
{
	return (long long)mono_ms();
}

static struct db_handle *handle_for(enum db_role role)
{
	return (role == DB_READ && !read_is_primary) ? &handles[DB_READ] : &handles[DB_PRIMARY];
}

static void set_err(enum th_err e, const char *msg, const char *state)
{
	last_err = e;
	log_clean(last_msg, sizeof(last_msg), msg ? msg : "");
	/* libpq messages end with a newline, which log_clean turned into '?' */
	for (size_t n = strlen(last_msg); n && last_msg[n - 1] == '?'; n--)
		last_msg[n - 1] = '\0';
	snprintf(last_state, sizeof(last_state), "%s", state ? state : "");
}

static void params_free(struct db_params *p)
{
	PQconninfoFree(p->opts);
	free(p->kw);
	free(p->val);
	memset(p, 0, sizeof(*p));
}

static int opt_is_set(const PQconninfoOption *o, const char *kw)
{
	for (; o->keyword; o++)
		if (strcmp(o->keyword, kw) == 0)
			return o->val && *o->val;
	return 0;
}

/* conninfo (key=value or a URI) as keyword/value arrays, with each of
 * defaults[] that it does not set itself.  PQconninfoParse says what is set:
 * a string match would be fooled by quoting, a URI or a password holding
 * "connect_timeout".  Its error text may quote the password: not logged. */
static int params_build(struct db_params *p, const char *conninfo)
{
	PQconninfoOption *o;
	char *err = NULL;
	size_t n = 0, i = 0;
	int d;

	memset(p, 0, sizeof(*p));
	p->opts = PQconninfoParse(conninfo, &err);
	if (!p->opts) {
		PQfreemem(err);
		set_err(TH_EUNAVAILABLE, "the conninfo is malformed", NULL);
		return -1;
	}
	for (o = p->opts; o->keyword; o++)
		n++;
	p->kw = calloc(n + DEF_N + 1, sizeof(*p->kw));
	p->val = calloc(n + DEF_N + 1, sizeof(*p->val));
	if (!p->kw || !p->val) {
		params_free(p);
		set_err(TH_EINTERNAL, "out of memory", NULL);
		return -1;
	}
	for (o = p->opts; o->keyword; o++) {
		if (o->val && *o->val) {
			p->kw[i] = o->keyword;
			p->val[i++] = o->val;
		}
	}
	for (d = 0; d < DEF_N; d++) {
		if (!opt_is_set(p->opts, defaults[d].kw) &&
		    /* tcp_user_timeout=0 is libpq's own default: say nothing */
		    strcmp(defaults[d].val, "0") != 0) {
			p->kw[i] = defaults[d].kw;
			p->val[i++] = defaults[d].val;
		}
	}
	return 0;
}

static void defaults_read(void)
{
	for (int d = 0; d < DEF_N; d++) {
		long long v = defaults[d].env ? cfg_int(defaults[d].env, defaults[d].dflt,
							defaults[d].min, defaults[d].max)
					      : defaults[d].dflt;

		snprintf(defaults[d].val, sizeof(defaults[d].val), "%lld", v);
	}
	prepare_on = cfg_bool("TH_DB_PREPARE", true);
}

int db_init(const char *primary, const char *read, long statement_timeout_ms)
{
	if (!primary || !*primary)
		return -1;
	defaults_read();
	handles[DB_PRIMARY].name = "primary";
	handles[DB_PRIMARY].conninfo = strdup(primary);
	if (!handles[DB_PRIMARY].conninfo)
		return -1;
	read_is_primary = !read || !*read;
	if (!read_is_primary) {
		handles[DB_READ].name = "replica";
		handles[DB_READ].conninfo = strdup(read);
		if (!handles[DB_READ].conninfo)
			return -1;
	}
	stmt_timeout_ms = statement_timeout_ms;
	client_timeout_ms = statement_timeout_ms > 0 ? statement_timeout_ms + DB_CLIENT_MARGIN_MS
						     : 0;
	return 0;
}

static void handle_drop(struct db_handle *h)
{
	if (h->conn) {
		PQfinish(h->conn);
		h->conn = NULL;
	}
	h->nprepared = 0; /* prepared statements die with their connection */
}

/* Milliseconds left until deadline (0: none): -1 for "no bound", else at
 * least 0. */
static int wait_left(long long deadline)
{
	long long left;

	if (!deadline)
		return -1;
	left = deadline - now_ms();
	if (left <= 0)
		return 0;
	return left > 3600000 ? 3600000 : (int)left; /* poll() takes an int */
}

/* Sends what libpq holds and reads until a result can be taken without
 * blocking, giving up at deadline: the server's statement_timeout cannot
 * help when the network between says nothing (a silent partition, a
 * middlebox that swallows), and TCP timeouts only help when nothing acks.
 * 0: PQgetResult() will not block; DB_IO_BROKEN; DB_IO_TIMEOUT. */
enum { DB_IO_OK = 0, DB_IO_BROKEN = 1, DB_IO_TIMEOUT = 2 };

static int await_result(PGconn *c, long long deadline)
{
	int tls = PQsslInUse(c);

	for (;;) {
		int f = PQflush(c), left, rc;
		struct pollfd p = {.fd = PQsocket(c), .events = POLLIN};

		if (f < 0 || p.fd < 0)
			return DB_IO_BROKEN;
		if (f == 0 && !PQisBusy(c))
			return DB_IO_OK;
		if (f > 0)
			p.events |= POLLOUT;
		left = wait_left(deadline);
		if (left == 0)
			return DB_IO_TIMEOUT;
		/* TLS may hold decrypted bytes that the socket no longer shows
		 * (libpq's own wait asks OpenSSL, which we cannot): look again
		 * every few milliseconds */
		if (tls && (left < 0 || left > DB_TLS_SLICE_MS))
			left = DB_TLS_SLICE_MS;
		rc = poll(&p, 1, left);
		if (rc < 0 && errno != EINTR)
			return DB_IO_BROKEN;
		if (((rc > 0 && (p.revents & (POLLIN | POLLERR | POLLHUP))) || (tls && rc == 0)) &&
		    !PQconsumeInput(c))
			return DB_IO_BROKEN;
	}
}

/* Every result of what was sent, the first error kept (else the last
 * result); *io as await_result.  NULL when none came. */
static PGresult *collect(PGconn *c, long long deadline, int *io)
{
	PGresult *r, *out = NULL;

	for (;;) {
		*io = await_result(c, deadline);
		if (*io != DB_IO_OK)
			break;
		r = PQgetResult(c);
		if (!r)
			break;
		if (out && PQresultStatus(out) == PGRES_FATAL_ERROR) {
			PQclear(r); /* the first error says why */
			continue;
		}
		PQclear(out);
		out = r;
	}
	if (*io != DB_IO_OK) {
		PQclear(out);
		out = NULL;
	}
	return out;
}

/* The statement name for sql on h, preparing it on first use; NULL when
 * preparing is off (TH_DB_PREPARE=0), the table is full or preparing failed
 * (then the caller runs it unprepared), or the connection failed (*io). */
static const char *statement(struct db_handle *h, const char *sql, int n, char *name, size_t size,
			     long long deadline, int *io)
{
	PGresult *r;
	int i;

	*io = DB_IO_OK;
	if (!prepare_on)
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
	r = collect(h->conn, deadline, io);
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		PQclear(r);
		return NULL; /* the unprepared run reports the error */
	}
	PQclear(r);
	h->prepared[h->nprepared++] = sql;
	return name;
}

void db_close(void)
{
	for (int i = 0; i < 2; i++) {
		handle_drop(&handles[i]);
		free(handles[i].conninfo);
		params_free(&handles[i].params);
		memset(&handles[i], 0, sizeof(handles[i])); /* backoff too */
	}
	handle_drop(&listener);
	free(listener.conninfo);
	params_free(&listener.params);
	memset(&listener, 0, sizeof(listener));
	listener.name = "listener";
	db_tx_close();
}

static void handle_fail(struct db_handle *h, const char *why)
{
	long long now = now_ms();

	log_warn("db %s: %s (retry in %ld ms)", h->name, why,
		 h->backoff_ms ? h->backoff_ms : DB_BACKOFF_MIN_MS);
	handle_drop(h);
	h->backoff_ms = h->backoff_ms ? h->backoff_ms * 2 : DB_BACKOFF_MIN_MS;
	if (h->backoff_ms > DB_BACKOFF_MAX_MS)
		h->backoff_ms = DB_BACKOFF_MAX_MS;
	h->retry_at_ms = now + h->backoff_ms;
}

/* An idle connection has nothing to say: when its socket is readable, the
 * server has ended it (restart, pg_terminate_backend, idle timeout) or sent
 * something unasked.  Either way it is not worth trusting: reconnect, so a
 * request does not fail on a connection that died before it started. */
static int handle_stale(struct db_handle *h)
{
	struct pollfd p = {.fd = PQsocket(h->conn), .events = POLLIN};

	if (PQstatus(h->conn) != CONNECTION_OK || p.fd < 0)
		return 1;
	if (PQtransactionStatus(h->conn) != PQTRANS_IDLE)
		return 0; /* inside a transaction of this request: keep it */
	return poll(&p, 1, 0) != 0;
}

/* Server notices (e.g. a full-text query with no words) may quote client
 * input: clean them before they reach the log, and keep them at debug. */
static void on_notice(void *arg, const char *message)
{
	char clean[256];

	(void)arg;
	log_debug("db notice: %s", log_clean(clean, sizeof(clean), message));
}

/* The deadline of a call starting now (0: none). */
static long long call_deadline(void)
{
	return client_timeout_ms ? now_ms() + client_timeout_ms : 0;
}

static int conn_setup(struct db_handle *h);

static PGconn *handle_conn(struct db_handle *h)
{
	if (h->conn && !handle_stale(h))
		return h->conn;
	if (h->conn)
		handle_drop(h);
	if (!h->conninfo) {
		set_err(TH_EUNAVAILABLE, "database not configured", NULL);
		return NULL;
	}
	if (now_ms() < h->retry_at_ms) {
		set_err(TH_EUNAVAILABLE, "database unavailable (backing off)", NULL);
		return NULL;
	}
	if (!h->params.kw && params_build(&h->params, h->conninfo) < 0) {
		handle_fail(h, last_msg);
		return NULL;
	}
	/* bounded by connect_timeout per host (defaults[]) */
	h->conn = PQconnectdbParams(h->params.kw, h->params.val, 0);
	if (!h->conn || PQstatus(h->conn) != CONNECTION_OK) {
		set_err(TH_EUNAVAILABLE, h->conn ? PQerrorMessage(h->conn) : "out of memory", NULL);
		handle_fail(h, last_msg);
		return NULL;
	}
	if (conn_setup(h) < 0)
		return NULL;
	if (h->backoff_ms)
		log_info("db %s: connected", h->name);
	h->backoff_ms = 0;
	h->retry_at_ms = 0;
	h->connects++;
	return h->conn;
}

/* What every new connection of h gets before its first statement; -1 (with
 * the backoff) when the server does not take it. */
static int conn_setup(struct db_handle *h)
{
	char sql[64];
	PGresult *r;
	int io;

	PQsetNoticeProcessor(h->conn, on_notice, NULL);
	/* sends never block: await_result() bounds every wait */
	if (PQsetnonblocking(h->conn, 1) != 0) {
		set_err(TH_EUNAVAILABLE, PQerrorMessage(h->conn), NULL);
		handle_fail(h, last_msg);
		return -1;
	}
	/* Behind a transaction pooler (TH_DB_PREPARE=0) a session setting
	 * would stay on whichever server connection ran it, for other
	 * clients: the timeout is then the role's (ALTER ROLE ... SET
	 * statement_timeout) and the client-side bound still holds. */
	if (stmt_timeout_ms > 0 && prepare_on) {
		/* a literal from our own configuration, not from input */
		snprintf(sql, sizeof(sql), "SET statement_timeout = %ld", stmt_timeout_ms);
		r = PQsendQuery(h->conn, sql) ? collect(h->conn, call_deadline(), &io) : NULL;
		if (PQresultStatus(r) != PGRES_COMMAND_OK) {
			set_err(TH_EUNAVAILABLE,
				r ? PQresultErrorMessage(r) : PQerrorMessage(h->conn), NULL);
			PQclear(r);
			handle_fail(h, last_msg);
			return -1;
		}
		PQclear(r);
	}
	return 0;
}

/* Drops a connection the server closed under a statement without starting a
 * backoff: the next handle_conn() connects at once.  A server really down
 * refuses that connect, and handle_fail() backs off as usual. */
static void handle_forget(struct db_handle *h, const char *why)
{
	log_info("db %s: %s; reconnecting", h->name, why);
	handle_drop(h);
}

/* Runs one statement as PQexecParams would, in two halves so that a
 * failure tells how far it got: *sent is 0 while nothing of it can have run
 * (preparing it, or handing it to libpq, failed), 1 once it was sent.  *io
 * says whether the connection broke or stayed silent past the deadline.
 * Returns the first error result, else the last result; NULL when none. */
static PGresult *run(struct db_handle *h, PGconn *c, const char *sql, int n,
		     const char *const *params, long long deadline, int *sent, int *io)
{
	char name[16];
	/* BEGIN/COMMIT and friends gain nothing from preparing */
	const char *stmt = NULL;

	*sent = 0;
	*io = DB_IO_OK;
	if (n > 0)
		stmt = statement(h, sql, n, name, sizeof(name), deadline, io);
	if (*io != DB_IO_OK || PQstatus(c) != CONNECTION_OK)
		return NULL; /* lost while preparing */
	if (!(stmt ? PQsendQueryPrepared(c, stmt, n, params, NULL, NULL, 0)
		   : PQsendQueryParams(c, sql, n, NULL, params, NULL, NULL, 0)))
		return NULL;
	*sent = 1;
	return collect(c, deadline, io);
}

/* The connect_timeout h's connections use, in ms (its conninfo's own, else
 * ours). */
static long connect_budget_ms(const struct db_handle *h)
{
	for (size_t i = 0; h->params.kw && h->params.kw[i]; i++)
		if (strcmp(h->params.kw[i], "connect_timeout") == 0) {
			long s = atol(h->params.val[i]);

			return (s > 0 ? s : 2) * 1000;
		}
	return 2000;
}

/* A new connection with h's parameters, made without blocking past
 * deadline (libpq's connect_timeout only bounds the blocking connect);
 * NULL when none came in time. */
static PGconn *connect_within(struct db_handle *h, long long deadline)
{
	PGconn *c = PQconnectStartParams(h->params.kw, h->params.val, 0);
	PostgresPollingStatusType st = PGRES_POLLING_WRITING;

	if (!c || PQstatus(c) == CONNECTION_BAD)
		goto fail;
	while (st != PGRES_POLLING_OK) {
		/* the socket may change between calls (the next host of a list) */
		struct pollfd p = {.fd = PQsocket(c),
				   .events = st == PGRES_POLLING_READING ? POLLIN : POLLOUT};
		int left = wait_left(deadline), rc;

		if (st == PGRES_POLLING_FAILED || p.fd < 0 || left == 0)
			goto fail;
		rc = poll(&p, 1, left);
		if (rc < 0 && errno != EINTR)
			goto fail;
		if (rc > 0)
			st = PQconnectPoll(c);
	}
	return c;
fail:
	PQfinish(c); /* NULL-safe */
	return NULL;
}

/* The client-side deadline passed under a statement.  A slow statement and
 * a server gone look alike from here, so ask: a new connection made within
 * connect_timeout says the server is there.  Then the old connection goes
 * (never reused with a statement still running), its backend is terminated
 * from the new one when both reached the same server (so the statement
 * stops now, not at the server's statement_timeout), and the new connection
 * takes its place without backoff: one slow statement does not take the
 * handle away from the requests after it.  -1 (nothing changed) when no new
 * connection came: the caller backs off as for a server gone. */
static int handle_replace_slow(struct db_handle *h)
{
	static const char terminate[] =
		"SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
		"WHERE pid = $1::int AND usename = current_user AND client_port = $2::int";
	char pid[16], port[16], host[256], hport[16];
	const char *params[] = {pid, port};
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	PGconn *c;
	PGresult *r;
	int same, io = DB_IO_OK;

	c = connect_within(h, now_ms() + connect_budget_ms(h));
	if (!c)
		return -1;
	memset(&ss, 0, sizeof(ss));
	snprintf(pid, sizeof(pid), "%d", PQbackendPID(h->conn));
	/* client_port says which connection of that pid's server it is: -1
	 * over a unix socket */
	snprintf(port, sizeof(port), "-1");
	if (getsockname(PQsocket(h->conn), (struct sockaddr *)&ss, &sl) == 0) {
		if (ss.ss_family == AF_INET)
			snprintf(port, sizeof(port), "%d",
				 ntohs(((struct sockaddr_in *)&ss)->sin_port));
		else if (ss.ss_family == AF_INET6)
			snprintf(port, sizeof(port), "%d",
				 ntohs(((struct sockaddr_in6 *)&ss)->sin6_port));
	}
	snprintf(host, sizeof(host), "%s", PQhost(h->conn) ? PQhost(h->conn) : "");
	snprintf(hport, sizeof(hport), "%s", PQport(h->conn) ? PQport(h->conn) : "");
	/* a multi-host conninfo may have reached another server, where that
	 * pid is someone else's */
	same = PQhost(c) && PQport(c) && strcmp(PQhost(c), host) == 0 &&
	       strcmp(PQport(c), hport) == 0;
	handle_drop(h);
	h->conn = c;
	if (conn_setup(h) < 0)
		return -1; /* the new one is silent too: backing off now */
	h->connects++;
	if (same) {
		r = PQsendQueryParams(c, terminate, 2, NULL, params, NULL, NULL, 0)
			    ? collect(c, now_ms() + connect_budget_ms(h), &io)
			    : NULL;
		if (!r && io == DB_IO_TIMEOUT) {
			set_err(TH_EUNAVAILABLE, "no answer on a new connection", NULL);
			handle_fail(h, last_msg);
			return -1;
		}
		/* failing (no right to, already gone) the backend still ends at
		 * its statement_timeout, or when it next writes to its closed
		 * socket */
		PQclear(r);
	}
	log_warn("db %s: a statement ran past %ld ms: its connection %s and replaced", h->name,
		 client_timeout_ms, same ? "terminated" : "dropped");
	return 0;
}

/* SQLSTATEs that say "this server, not this statement": it is shutting
 * down (57P01, 57P02), starting or recovering (57P03), the connection is
 * in trouble (08xxx), or it is a standby now, after a failover (25006,
 * read_only_sql_transaction, on the primary handle).  The connection is
 * replaced: with a multi-host conninfo and target_session_attrs=read-write,
 * libpq finds the server that is the primary now. */
static int state_is_server(const char *state)
{
	return state && (strcmp(state, "25006") == 0 || strcmp(state, "57P01") == 0 ||
			 strcmp(state, "57P02") == 0 || strcmp(state, "57P03") == 0 ||
			 strncmp(state, "08", 2) == 0);
}

/* db_exec; rerun: the statement may run twice (a read, BEGIN), so it is sent
 * again once on a new connection when the old one broke under it. */
static struct db_res *exec(enum db_role role, const char *sql, int n, const char *const *params,
			   int rerun)
{
	struct db_handle *h = handle_for(role);
	unsigned long connects = h->connects;
	long long deadline;
	int in_tx, sent, io, tries = 0;
	PGresult *r;
	ExecStatusType st;
	struct db_res *out;
	const char *state;
	PGconn *c;

	if (h->tx_lost) {
		set_err(TH_EUNAVAILABLE, "database connection lost inside the transaction", NULL);
		return NULL;
	}
again:
	/* each attempt has the whole bound: a retry after a server that went
	 * away late in the first must not start with its time already spent */
	deadline = call_deadline();
	c = handle_conn(h);
	if (!c)
		return NULL;
	in_tx = PQtransactionStatus(c) != PQTRANS_IDLE;
	r = run(h, c, sql, n, params, deadline, &sent, &io);
	st = PQresultStatus(r);
	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
		out = malloc(sizeof(*out));
		if (!out) {
			PQclear(r);
			set_err(TH_EINTERNAL, "out of memory", NULL);
			return NULL;
		}
		out->res = r;
		out->slot = NULL;
		last_err = TH_OK;
		return out;
	}
	if (io == DB_IO_TIMEOUT) {
		/* a server (or a network) that says nothing: its state is unknown,
		 * so the connection goes, and the next calls back off rather than
		 * each waiting out the deadline again */
		char why[96];

		snprintf(why, sizeof(why), "no answer within %ld ms", client_timeout_ms);
		PQclear(r);
		h->tx_lost = in_tx;
		if (handle_replace_slow(h) == 0) {
			/* the server answers: only this statement was slow */
			set_err(TH_EUNAVAILABLE, why, NULL);
			return NULL;
		}
		set_err(TH_EUNAVAILABLE, why, NULL);
		handle_fail(h, last_msg);
		return NULL;
	}
	state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	if (io == DB_IO_BROKEN || PQstatus(c) != CONNECTION_OK) {
		set_err(TH_EUNAVAILABLE, PQerrorMessage(c), state);
		PQclear(r);
		if (h->connects != connects) {
			/* a connection made for this call failing: the server is in
			 * trouble, back off */
			handle_fail(h, last_msg);
			return NULL;
		}
		/* An old connection the server closed under the statement (it
		 * ended the session in the instant after handle_stale() looked,
		 * or during the statement): not "database down", so no backoff. */
		if (in_tx) {
			/* the transaction is gone with it; what the request does next
			 * must not run outside it */
			h->tx_lost = 1;
			handle_forget(h, last_msg);
			return NULL;
		}
		if (tries++ == 0 && (!sent || rerun)) {
			handle_forget(h, last_msg);
			goto again;
		}
		log_warn("db %s: %s after the statement was sent: not retried (it may have run)",
			 h->name, last_msg);
		handle_forget(h, "connection closed by the server");
		return NULL;
	}
	snprintf(last_constraint, sizeof(last_constraint), "%s",
		 (r && PQresultErrorField(r, PG_DIAG_CONSTRAINT_NAME))
			 ? PQresultErrorField(r, PG_DIAG_CONSTRAINT_NAME)
			 : "");
	if (state && strcmp(state, "23505") == 0) {
		set_err(TH_ECONFLICT, PQresultErrorMessage(r), state);
	} else if (state && strcmp(state, "25006") == 0 && h == &handles[DB_READ]) {
		/* the read handle reaches a standby by design (prefer-standby):
		 * a write sent on it is the caller's mistake, not a failover;
		 * replacing the connection would land on a standby again */
		set_err(TH_EINTERNAL, PQresultErrorMessage(r), state);
	} else if (state_is_server(state)) {
		/* a standby or a server starting refused before running anything */
		int did_not_run = strcmp(state, "25006") == 0 || strcmp(state, "57P03") == 0;

		set_err(TH_EUNAVAILABLE, PQresultErrorMessage(r), state);
		PQclear(r);
		h->tx_lost = in_tx; /* the transaction goes with the connection */
		if (h->connects != connects) {
			/* a connection made for this call says so too: back off */
			handle_fail(h, last_msg);
			return NULL;
		}
		handle_forget(h, last_msg);
		if (!in_tx && tries++ == 0 && (did_not_run || rerun))
			goto again;
		return NULL;
	} else if (state && strcmp(state, "57014") == 0) {
		/* the statement timeout */
		set_err(TH_EUNAVAILABLE, PQresultErrorMessage(r), state);
	} else {
		set_err(TH_EINTERNAL, r ? PQresultErrorMessage(r) : PQerrorMessage(c), state);
	}
	PQclear(r);
	return NULL;
}

struct db_res *db_exec(enum db_role role, const char *sql, int n, const char *const *params)
{
	/* the read handle only reads (it may be a replica) */
	return exec(role, sql, n, params, role == DB_READ);
}

static void res_cleanup(void *p)
{
	struct db_res **slot = p;

	db_res_free(*slot); /* NULL when the owner freed it already */
}

struct db_res *db_res_own(struct arena *a, struct db_res *r)
{
	struct db_res **slot;

	if (!r)
		return NULL;
	slot = arena_alloc(a, sizeof(*slot));
	if (!slot) {
		db_res_free(r);
		set_err(TH_EINTERNAL, "out of memory", NULL);
		return NULL;
	}
	*slot = r;
	r->slot = slot;
	/* on failure arena_defer has run the cleanup: r is freed */
	if (arena_defer(a, res_cleanup, slot) < 0) {
		set_err(TH_EINTERNAL, "out of memory", NULL);
		return NULL;
	}
	return r;
}

enum th_err db_last_err(void)
{
	return last_err;
}
const char *db_last_error(void)
{
	return last_msg;
}
const char *db_last_sqlstate(void)
{
	return last_state;
}
const char *db_last_constraint(void)
{
	return last_constraint;
}

int db_res_rows(const struct db_res *r)
{
	return r ? PQntuples(r->res) : 0;
}
int db_res_cols(const struct db_res *r)
{
	return r ? PQnfields(r->res) : 0;
}

const char *db_res_get(const struct db_res *r, int row, int col)
{
	if (!r || row < 0 || col < 0 || row >= PQntuples(r->res) || col >= PQnfields(r->res))
		return "";
	return PQgetvalue(r->res, row, col);
}

int db_res_isnull(const struct db_res *r, int row, int col)
{
	if (!r || row < 0 || col < 0 || row >= PQntuples(r->res) || col >= PQnfields(r->res))
		return 1;
	return PQgetisnull(r->res, row, col);
}

long long db_res_affected(const struct db_res *r)
{
	const char *s = r ? PQcmdTuples(r->res) : "";

	return *s ? atoll(s) : 0;
}

void db_res_free(struct db_res *r)
{
	if (!r)
		return;
	if (r->slot)
		*r->slot = NULL;
	PQclear(r->res);
	free(r);
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
int db_commit(void)
{
	return db_simple("COMMIT", 0);
}

void db_rollback(void)
{
	struct db_handle *h = &handles[DB_PRIMARY];

	/* a transaction lost with its connection was rolled back by the server */
	handles[DB_PRIMARY].tx_lost = handles[DB_READ].tx_lost = 0;
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

int db_listen(const char *channel)
{
	char sql[96];
	PGresult *r;
	PGconn *c;

	if (!listener.conninfo) {
		listener.conninfo = handles[DB_PRIMARY].conninfo
					    ? strdup(handles[DB_PRIMARY].conninfo)
					    : NULL;
		if (!listener.conninfo)
			return -1;
	}
	if (listener.conn && PQstatus(listener.conn) == CONNECTION_OK)
		return 0;
	handle_drop(&listener);
	c = handle_conn(&listener);
	if (!c)
		return -1;
	/* the channel name is a literal of ours, not input */
	snprintf(sql, sizeof(sql), "LISTEN %s", channel);
	r = PQexec(c, sql);
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		set_err(TH_EUNAVAILABLE, PQerrorMessage(c), NULL);
		PQclear(r);
		handle_fail(&listener, last_msg);
		return -1;
	}
	PQclear(r);
	return 0;
}

int db_listen_fd(void)
{
	return listener.conn ? PQsocket(listener.conn) : -1;
}

int db_listen_drain(void)
{
	PGnotify *n;
	int count = 0;

	if (!listener.conn)
		return -1;
	if (!PQconsumeInput(listener.conn) || PQstatus(listener.conn) != CONNECTION_OK) {
		handle_fail(&listener, "listen connection lost");
		return -1;
	}
	while ((n = PQnotifies(listener.conn)) != NULL) {
		count++;
		PQfreemem(n);
	}
	return count;
}

/* --- pipelined transactions (db_tx_*): one out at a time ------------------ */

#define DB_TX_STMTS_MAX 8

static struct db_handle txh = {.name = "pipeline"};
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
	handle_drop(&txh);
	free(txh.conninfo);
	params_free(&txh.params);
	memset(&txh, 0, sizeof(txh));
	txh.name = "pipeline";
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
		set_err(TH_EINTERNAL, "db_tx_send: a transaction is out, or too many statements",
			NULL);
		return -1;
	}
	if (!txh.conninfo) {
		txh.conninfo = handles[DB_PRIMARY].conninfo ? strdup(handles[DB_PRIMARY].conninfo)
							    : NULL;
		if (!txh.conninfo) {
			set_err(TH_EUNAVAILABLE, "database not configured", NULL);
			return -1;
		}
	}
	c = handle_conn(&txh); /* idle here: a readable socket means a dead one */
	if (!c)
		return -1;
	/* prepared once per connection, before pipeline mode; unnamed when
	 * preparing is off (TH_DB_PREPARE=0) or did not work (then the
	 * transaction reports the statement's error) */
	deadline = call_deadline();
	for (i = 0; i < nstmts; i++) {
		stmt[i] = statement(&txh, sqls[i], nparams[i], names[i], sizeof(names[i]), deadline,
				    &io);
		if (io != DB_IO_OK) {
			/* broken or silent: what it holds is unknown, so it goes */
			set_err(TH_EUNAVAILABLE,
				io == DB_IO_TIMEOUT ? "no answer from the database"
						    : PQerrorMessage(c),
				NULL);
			handle_fail(&txh, last_msg);
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
	set_err(PQstatus(c) == CONNECTION_OK ? TH_EINTERNAL : TH_EUNAVAILABLE, PQerrorMessage(c),
		NULL);
	if (PQstatus(c) != CONNECTION_OK)
		handle_fail(&txh, last_msg);
	else if (PQpipelineStatus(c) != PQ_PIPELINE_OFF)
		handle_drop(&txh);
	tx_reset();
	return -1;
}

int db_tx_poll(struct db_res **last)
{
	PGconn *c = txh.conn;
	int nulls = 0, done = 0;

	*last = NULL;
	if (!tx_out || !c) {
		set_err(TH_EUNAVAILABLE, "no transaction out", NULL);
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
				set_err(TH_EINTERNAL,
					st == PGRES_PIPELINE_ABORTED ? "pipeline aborted"
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
	if (tx_failed && state_is_server(last_state)) {
		/* a standby after a failover, a server shutting down: the next
		 * send connects anew (and finds the primary of a multi-host
		 * conninfo) */
		last_err = TH_EUNAVAILABLE;
		handle_forget(&txh, last_msg);
		tx_reset();
		return -1;
	}
	if (tx_failed || tx_nres != tx_nstmts || !tx_last) {
		if (!tx_failed)
			set_err(TH_EINTERNAL, "transaction ended without every result", NULL);
		tx_reset();
		return -1;
	}
	*last = malloc(sizeof(**last));
	if (!*last) {
		set_err(TH_EINTERNAL, "out of memory", NULL);
		tx_reset();
		return -1;
	}
	(*last)->res = tx_last;
	(*last)->slot = NULL;
	tx_last = NULL;
	tx_reset();
	last_err = TH_OK;
	return 1;
lost:
	/* the commit's fate is unknown: the caller treats it as not done, and
	 * idempotent inserts make a retry safe either way */
	set_err(TH_EUNAVAILABLE, PQerrorMessage(c), NULL);
	handle_fail(&txh, last_msg);
	tx_reset();
	return -1;
}
