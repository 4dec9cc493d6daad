/* dbconn: the db module's connections: a conninfo completed with our
 * bounds, lazy connects with backoff, stale and silent connections found and
 * replaced, every wait bounded (contracts in lib/db.h and lib/dbpriv.h). */
#include <errno.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "db.h"
#include "dbpriv.h"
#include "log.h"
#include "mono.h"

#define DB_BACKOFF_MIN_MS 100
#define DB_BACKOFF_MAX_MS 5000
/* what the client waits beyond the statement timeout before it gives up on a
 * server that says nothing (the server's own timeout answers first) */
#define DB_CLIENT_MARGIN_MS 1000
/* how often a wait on a TLS connection asks libpq for what TLS may hold */
#define DB_TLS_SLICE_MS 10
/* the first retry's delay after a conflict or a timeout; doubling, with
 * jitter (dbconn_retry_delay) */
#define DB_RETRY_BASE_MS 50

static struct dbconn handles[2];
static int read_is_primary = 1;
static long stmt_timeout_ms;
static long client_timeout_ms;      /* 0: no client-side bound */
static int prepare_on = 1;          /* TH_DB_PREPARE */
static int retries_max = 3;         /* TH_DB_RETRIES */
static long retry_budget_ms = 2000; /* TH_DB_RETRY_MS */
static unsigned long long jitter_state;

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

/* the monotonic clock as the signed milliseconds of the back-off sums */
static long long now_ms(void)
{
	return (long long)mono_ms();
}

static struct dbconn *handle_for(enum db_role role)
{
	return (role == DB_READ && !read_is_primary) ? &handles[DB_READ] : &handles[DB_PRIMARY];
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
		dbres_set_err(TH_EUNAVAILABLE, "the conninfo is malformed", NULL);
		return -1;
	}
	for (o = p->opts; o->keyword; o++)
		n++;
	p->kw = calloc(n + DEF_N + 1, sizeof(*p->kw));
	p->val = calloc(n + DEF_N + 1, sizeof(*p->val));
	if (!p->kw || !p->val) {
		params_free(p);
		dbres_set_err(TH_EINTERNAL, "out of memory", NULL);
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
	retries_max = (int)cfg_int("TH_DB_RETRIES", 3, 0, 10);
	retry_budget_ms = (long)cfg_int("TH_DB_RETRY_MS", 2000, 0, 60000);
}

int dbconn_init(const char *primary, const char *read, long statement_timeout_ms)
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

void dbconn_close(void)
{
	for (int i = 0; i < 2; i++)
		dbconn_release(&handles[i], NULL); /* backoff too */
}

void dbconn_release(struct dbconn *h, const char *name)
{
	dbconn_drop(h);
	free(h->conninfo);
	params_free(&h->params);
	memset(h, 0, sizeof(*h));
	h->name = name;
}

struct dbconn *dbconn_role(enum db_role role)
{
	return handle_for(role);
}

int dbconn_is_replica(const struct dbconn *h)
{
	return h == &handles[DB_READ];
}

long dbconn_client_timeout_ms(void)
{
	return client_timeout_ms;
}

int dbconn_prepare_on(void)
{
	return prepare_on;
}

int dbconn_state_is_conflict(const char *state)
{
	/* serialization_failure, deadlock_detected: the server rolled the
	 * transaction back, so nothing of it happened */
	return state && (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0);
}

/* xorshift64*: jitter needs no cryptographic quality, only workers (and
 * bridges) that do not retry in step */
static unsigned long long jitter_next(void)
{
	if (!jitter_state)
		jitter_state = ((unsigned long long)getpid() << 32) ^ mono_us() ^
			       0x9e3779b97f4a7c15ULL;
	jitter_state ^= jitter_state >> 12;
	jitter_state ^= jitter_state << 25;
	jitter_state ^= jitter_state >> 27;
	return jitter_state * 2685821657736338717ULL;
}

long dbconn_retry_delay(int done, long long started_ms)
{
	long cap, delay;

	if (done >= retries_max || done < 0)
		return -1;
	cap = (long)DB_RETRY_BASE_MS << (done > 10 ? 10 : done);
	/* half fixed, half random: never at once, never in step */
	delay = cap / 2 + (long)(jitter_next() % (unsigned long long)(cap / 2 + 1));
	if (now_ms() + delay - started_ms > retry_budget_ms)
		return -1;
	return delay;
}

void dbconn_drop(struct dbconn *h)
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
PGresult *dbconn_collect(PGconn *c, long long deadline, int *io)
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

void dbconn_fail(struct dbconn *h, const char *why)
{
	long long now = now_ms();

	log_warn("db %s: %s (retry in %ld ms)", h->name, why,
		 h->backoff_ms ? h->backoff_ms : DB_BACKOFF_MIN_MS);
	dbconn_drop(h);
	h->backoff_ms = h->backoff_ms ? h->backoff_ms * 2 : DB_BACKOFF_MIN_MS;
	if (h->backoff_ms > DB_BACKOFF_MAX_MS)
		h->backoff_ms = DB_BACKOFF_MAX_MS;
	h->retry_at_ms = now + h->backoff_ms;
}

/* An idle connection has nothing to say: when its socket is readable, the
 * server has ended it (restart, pg_terminate_backend, idle timeout) or sent
 * something unasked.  Either way it is not worth trusting: reconnect, so a
 * request does not fail on a connection that died before it started. */
static int conn_stale(struct dbconn *h)
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
long long dbconn_deadline(void)
{
	return client_timeout_ms ? now_ms() + client_timeout_ms : 0;
}

static int conn_setup(struct dbconn *h);
static long connect_budget_ms(const struct dbconn *h);

PGconn *dbconn_get(struct dbconn *h)
{
	if (h->conn && !conn_stale(h))
		return h->conn;
	if (h->conn)
		dbconn_drop(h);
	if (!h->conninfo) {
		dbres_set_err(TH_EUNAVAILABLE, "database not configured", NULL);
		return NULL;
	}
	if (now_ms() < h->retry_at_ms) {
		dbres_set_err(TH_EUNAVAILABLE, "database unavailable (backing off)", NULL);
		return NULL;
	}
	if (!h->params.kw && params_build(&h->params, h->conninfo) < 0) {
		dbconn_fail(h, db_last_error());
		return NULL;
	}
	/* the names resolved within connect_timeout (lib/dbhost.c), then the
	 * connect bounded by connect_timeout per host (defaults[]) */
	{
		struct dbhost d;
		char why[256];

		if (dbhost_resolve(&h->params, connect_budget_ms(h), &d, why, sizeof(why)) < 0) {
			char msg[320];

			snprintf(msg, sizeof(msg), "no database host name resolved: %s", why);
			dbres_set_err(TH_EUNAVAILABLE, msg, NULL);
			dbconn_fail(h, db_last_error());
			return NULL;
		}
		if (why[0])
			log_warn("db %s: left out of this connect: %s", h->name, why);
		h->conn = PQconnectdbParams(d.kw ? d.kw : h->params.kw,
					    d.kw ? d.val : h->params.val, 0);
		dbhost_free(&d);
	}
	if (!h->conn || PQstatus(h->conn) != CONNECTION_OK) {
		dbres_set_err(TH_EUNAVAILABLE, h->conn ? PQerrorMessage(h->conn) : "out of memory",
			      NULL);
		dbconn_fail(h, db_last_error());
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
static int conn_setup(struct dbconn *h)
{
	char sql[64];
	PGresult *r;
	int io;

	PQsetNoticeProcessor(h->conn, on_notice, NULL);
	/* sends never block: await_result() bounds every wait */
	if (PQsetnonblocking(h->conn, 1) != 0) {
		dbres_set_err(TH_EUNAVAILABLE, PQerrorMessage(h->conn), NULL);
		dbconn_fail(h, db_last_error());
		return -1;
	}
	/* Behind a transaction pooler (TH_DB_PREPARE=0) a session setting
	 * would stay on whichever server connection ran it, for other
	 * clients: the timeout is then the role's (ALTER ROLE ... SET
	 * statement_timeout) and the client-side bound still holds. */
	if (stmt_timeout_ms > 0 && prepare_on) {
		/* a literal from our own configuration, not from input */
		snprintf(sql, sizeof(sql), "SET statement_timeout = %ld", stmt_timeout_ms);
		r = PQsendQuery(h->conn, sql) ? dbconn_collect(h->conn, dbconn_deadline(), &io)
					      : NULL;
		if (PQresultStatus(r) != PGRES_COMMAND_OK) {
			dbres_set_err(TH_EUNAVAILABLE,
				      r ? PQresultErrorMessage(r) : PQerrorMessage(h->conn), NULL);
			PQclear(r);
			dbconn_fail(h, db_last_error());
			return -1;
		}
		PQclear(r);
	}
	return 0;
}

/* Drops a connection the server closed under a statement without starting a
 * backoff: the next dbconn_get() connects at once.  A server really down
 * refuses that connect, and dbconn_fail() backs off as usual. */
void dbconn_forget(struct dbconn *h, const char *why)
{
	log_info("db %s: %s; reconnecting", h->name, why);
	dbconn_drop(h);
}

/* The connect_timeout h's connections use, in ms (its conninfo's own, else
 * ours). */
static long connect_budget_ms(const struct dbconn *h)
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
static PGconn *connect_within(struct dbconn *h, long long deadline)
{
	struct dbhost d;
	char why[256];
	long budget = (long)(deadline - now_ms());
	PGconn *c = NULL;
	PostgresPollingStatusType st = PGRES_POLLING_WRITING;

	if (dbhost_resolve(&h->params, budget > 0 ? budget : 1, &d, why, sizeof(why)) < 0)
		goto fail;
	c = PQconnectStartParams(d.kw ? d.kw : h->params.kw, d.kw ? d.val : h->params.val, 0);
	dbhost_free(&d);

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
int dbconn_replace_slow(struct dbconn *h)
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
	dbconn_drop(h);
	h->conn = c;
	if (conn_setup(h) < 0)
		return -1; /* the new one is silent too: backing off now */
	h->connects++;
	if (same) {
		r = PQsendQueryParams(c, terminate, 2, NULL, params, NULL, NULL, 0)
			    ? dbconn_collect(c, now_ms() + connect_budget_ms(h), &io)
			    : NULL;
		if (!r && io == DB_IO_TIMEOUT) {
			dbres_set_err(TH_EUNAVAILABLE, "no answer on a new connection", NULL);
			dbconn_fail(h, db_last_error());
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
int dbconn_state_is_server(const char *state)
{
	return state && (strcmp(state, "25006") == 0 || strcmp(state, "57P01") == 0 ||
			 strcmp(state, "57P02") == 0 || strcmp(state, "57P03") == 0 ||
			 strncmp(state, "08", 2) == 0);
}
