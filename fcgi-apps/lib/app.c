/* app: accept loop, dispatch, built-in routes. */
#include "app.h"

#include <errno.h>
#include <fcgiapp.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cache.h"
#include "config.h"
#include "db.h"
#include "jh.h"
#include "log.h"
#include "metrics.h"
#include "mono.h"
#include "revoke.h"
#include "token.h"

#define APP_MAX_ROUTES (METRICS_MAX_ROUTES - 1) /* last index: unmatched */
#define APP_UNMATCHED (METRICS_MAX_ROUTES - 1)
#define APP_DRAIN_MS 2000
/* how often a worker that never waits looks for SIGTERM */
#define APP_SIGNAL_CHECK_MS 50
#define APP_ECHO_LIMIT 1024

static const struct app *the_app;
static struct route table[APP_MAX_ROUTES];
static size_t ntable;
static int with_test_routes;
static size_t default_body_limit;
static volatile sig_atomic_t stopping;

static char health_path[64], live_path[64], ready_path[64];
static char metrics_path[64], echo_path[64], other_metrics_path[64];
static char other_metrics_file[4096];

const char *app_name(void)
{
	return the_app ? the_app->name : "townhall";
}

/* The checks of a health route: postgres (the primary), postgres_read (the
 * read handle: a replica, or the primary again) and redis.  strict: every
 * check decides (GET /health, as it always was); else only the primary and
 * Redis do (GET /health/ready): a replica down leaves reads on the primary
 * (lib/db.c), so an app host that lost its replica still serves, and a
 * balancer must not take every host out for it. */
static void health_reply(struct http_req *req, int strict)
{
	static const char *const names[] = {"postgres", "postgres_read", "redis"};
	static const int decides[] = {1, 0, 1};
	int ok[3], good = 1;
	struct json_object *checks = json_object_new_object(), *o;
	char msg[96] = "";
	size_t i, n = 0;

	ok[0] = db_ping(DB_PRIMARY) == 0;
	ok[1] = db_ping(DB_READ) == 0;
	ok[2] = cache_ping() == 0;
	for (i = 0; i < 3; i++) {
		json_object_object_add(checks, names[i],
				       json_object_new_string(ok[i] ? "ok" : "down"));
		if (ok[i] || !(strict || decides[i]))
			continue;
		good = 0;
		n += (size_t)snprintf(msg + n, sizeof(msg) - n, "%s%s", n ? ", " : "", names[i]);
	}
	if (good) {
		o = json_object_new_object();
		json_object_object_add(o, "status", json_object_new_string("ok"));
		json_object_object_add(o, "checks", checks);
		http_reply_json(req, 200, o);
		return;
	}
	snprintf(msg + n, sizeof(msg) - n, " %s down", strchr(msg, ',') ? "are" : "is");
	/* the error shape of API.md, plus the checks for an operator */
	o = http_error_json(TH_EUNAVAILABLE, msg, NULL);
	if (o) {
		json_object_object_add(o, "status", json_object_new_string("unavailable"));
		json_object_object_add(o, "checks", checks);
	} else {
		json_object_put(checks);
	}
	http_reply_error_obj(req, TH_EUNAVAILABLE, o);
}

static void health_handler(struct http_req *req)
{
	health_reply(req, 1);
}

static void ready_handler(struct http_req *req)
{
	health_reply(req, 0);
}

/* The process runs its loop: no database or Redis call, so a balancer or a
 * supervisor can tell a stuck worker from a dependency outage. */
static void live_handler(struct http_req *req)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "status", json_object_new_string("ok"));
	http_reply_json(req, 200, o);
}

static void metrics_handler(struct http_req *req)
{
	size_t len;
	char *text = metrics_render(req->arena, &len);

	if (!text) {
		http_reply_error(req, TH_EINTERNAL, "metrics unavailable", NULL);
		return;
	}
	http_reply_raw(req, 200, "text/plain; version=0.0.4", text, len);
}

static void other_metrics_handler(struct http_req *req)
{
	size_t len;
	char *text = metrics_render_file(req->arena, other_metrics_file, &len);

	if (!text) {
		http_reply_error(req, TH_EUNAVAILABLE, "no metrics yet", NULL);
		return;
	}
	http_reply_raw(req, 200, "text/plain; version=0.0.4", text, len);
}

static void echo_handler(struct http_req *req)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "echo", json_object_get(req->json));
	http_reply_json(req, 200, o);
}

static int table_build(const struct app *app)
{
	char err[160];
	size_t i;

	if (app->nroutes + 6 > APP_MAX_ROUTES) {
		fprintf(stderr, "%s: too many routes\n", app->name);
		return -1;
	}
	snprintf(health_path, sizeof(health_path), "/api/%s/health", app->name);
	snprintf(live_path, sizeof(live_path), "/api/%s/health/live", app->name);
	snprintf(ready_path, sizeof(ready_path), "/api/%s/health/ready", app->name);
	snprintf(metrics_path, sizeof(metrics_path), "/metrics/%s", app->name);
	snprintf(echo_path, sizeof(echo_path), "/api/%s/echo", app->name);
	/* the built-in exact paths first: they win over an app's pattern such
	 * as /api/media/:id */
	table[ntable++] = (struct route){"GET", health_path, health_handler, 0, 0};
	table[ntable++] = (struct route){"GET", live_path, live_handler, 0, 0};
	table[ntable++] = (struct route){"GET", ready_path, ready_handler, 0, 0};
	table[ntable++] = (struct route){"GET", metrics_path, metrics_handler, 0, 0};
	table[ntable++] = (struct route){"POST", echo_path, echo_handler, ROUTE_JSON | ROUTE_TEST,
					 APP_ECHO_LIMIT};
	if (app->serves_metrics_of) {
		snprintf(other_metrics_path, sizeof(other_metrics_path), "/metrics/%s",
			 app->serves_metrics_of);
		snprintf(other_metrics_file, sizeof(other_metrics_file), "%s/run/%s.metrics",
			 cfg_str("TH_VAR_DIR", "."), app->serves_metrics_of);
		table[ntable++] = (struct route){"GET", other_metrics_path, other_metrics_handler,
						 0, 0};
	}
	for (i = 0; i < app->nroutes; i++)
		table[ntable++] = app->routes[i];
	if (router_validate(table, ntable, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s: %s\n", app->name, err);
		return -1;
	}
	return 0;
}

static int metrics_setup(const struct app *app)
{
	const char *labels[METRICS_MAX_ROUTES];
	char(*buf)[METRICS_LABEL];
	char path[4096];
	const char *var = cfg_str("TH_VAR_DIR", NULL);
	size_t i;
	int rc;

	if (!var) {
		log_warn("TH_VAR_DIR unset: metrics disabled");
		return 0;
	}
	buf = calloc(METRICS_MAX_ROUTES, sizeof(*buf));
	if (!buf)
		return -1;
	for (i = 0; i < METRICS_MAX_ROUTES; i++)
		labels[i] = "";
	for (i = 0; i < ntable; i++) {
		snprintf(buf[i], METRICS_LABEL, "%s %s", table[i].method, table[i].pattern);
		labels[i] = buf[i];
	}
	labels[APP_UNMATCHED] = "unmatched";
	snprintf(path, sizeof(path), "%s/run/%s.metrics", var, app->name);
	/* label every index, so an index an older build used is reset too */
	rc = metrics_open(path, app->name, labels, METRICS_MAX_ROUTES);
	free(buf);
	if (rc < 0)
		log_error("cannot open metrics file %s: %s", path, strerror(errno));
	return rc;
}

static void on_term(int sig)
{
	(void)sig;
	stopping = 1;
}

static long fcgx_read(void *ctx, char *buf, size_t n)
{
	int chunk = n > INT32_MAX ? INT32_MAX : (int)n;

	return FCGX_GetStr(buf, chunk, (FCGX_Stream *)ctx);
}

static int fcgx_write(void *ctx, const char *buf, size_t n)
{
	while (n > 0) {
		int chunk = n > INT32_MAX ? INT32_MAX : (int)n;

		if (FCGX_PutStr(buf, chunk, (FCGX_Stream *)ctx) != chunk)
			return -1;
		buf += chunk;
		n -= (size_t)chunk;
	}
	return 0;
}

/* Bearer token -> req->user_id.  Returns 0 when the route may run: a valid
 * token, or no token on a route where it is optional.  Otherwise replies 401
 * (or 503 when revocation cannot be decided) and returns -1. */
static int authenticate(struct http_req *req, int required)
{
	const char *h = http_header(req, "Authorization");
	struct token_claims c;
	enum th_err e;

	if (!h || !*h) {
		if (!required)
			return 0;
		http_reply_error(req, TH_EUNAUTHORIZED, "missing bearer token", NULL);
		http_set_header(req, "WWW-Authenticate", "Bearer");
		return -1;
	}
	if (strncasecmp(h, "Bearer ", 7) != 0) {
		e = TH_EUNAUTHORIZED;
	} else {
		h += 7;
		while (*h == ' ')
			h++;
		e = token_verify(h, strlen(h), &c);
	}
	if (e != TH_OK) {
		http_reply_error(req, e,
				 e == TH_EUNAUTHORIZED ? "invalid or expired token"
						       : "cannot check the token now",
				 NULL);
		if (e == TH_EUNAUTHORIZED)
			http_set_header(req, "WWW-Authenticate", "Bearer error=\"invalid_token\"");
		return -1;
	}
	req->user_id = c.user_id;
	req->session_id = c.session_id;
	return 0;
}

static void dispatch(struct http_req *req, size_t *metric_idx)
{
	struct route_match m;
	const struct route *r;
	enum router_result rr;
	size_t limit;
	int i;

	*metric_idx = APP_UNMATCHED;
	rr = router_match(table, ntable, req->method, req->path, with_test_routes, &m);
	if (rr == ROUTER_NOT_FOUND) {
		http_reply_error(req, TH_ENOTFOUND, "no such route", NULL);
		return;
	}
	if (rr == ROUTER_METHOD_NOT_ALLOWED) {
		http_reply_error(req, TH_EMETHOD, NULL, NULL);
		http_add_header(req, "Allow", m.allow);
		return;
	}
	r = m.route;
	*metric_idx = m.index;
	for (i = 0; i < m.nparams; i++) {
		req->param_names[i] = m.param_names[i];
		req->param_name_lens[i] = m.param_name_lens[i];
		req->params[i] = http_decode(req->arena, m.params[i], m.param_lens[i], false);
		if (!req->params[i]) {
			http_reply_error(req, TH_ENOTFOUND, "malformed path", NULL);
			return;
		}
	}
	req->nparams = m.nparams;
	if ((r->flags & (ROUTE_AUTH | ROUTE_AUTH_OPTIONAL)) &&
	    authenticate(req, (r->flags & ROUTE_AUTH) != 0) < 0)
		return;
	limit = r->body_limit ? r->body_limit : default_body_limit;
	if (r->flags & ROUTE_STREAM) {
		/* the declared size decides early; the handler counts the bytes */
		if (req->content_length > 0 && (unsigned long long)req->content_length > limit) {
			http_reply_error(req, TH_ETOOLARGE, "request body too large", NULL);
			return;
		}
	} else if ((r->flags & ROUTE_JSON) || req->content_length > 0) {
		if (http_read_body(req, limit) < 0)
			return;
	}
	if ((r->flags & ROUTE_JSON) && jh_parse_body_or_400(req) < 0)
		return;
	r->handler(req);
	if (req->resp.status == 0) {
		log_error("handler for %s %s set no response", r->method, r->pattern);
		http_reply_error(req, TH_EINTERNAL, NULL, NULL);
	}
}

/* Ends a request.  libfcgi closes a connection the careful TCP way:
 * shutdown, then read until nginx closes its end (up to 2 s), so that data
 * nginx is still sending cannot turn into a reset that loses our reply.
 * Once the request's input was read to its end nothing of nginx's is left
 * to send, and those three system calls a request (a tenth of a bare
 * responder's) buy nothing: the connection is closed at once.  Reading the
 * end of an empty body costs no system call (nginx sent it with the
 * params); a body a handler left unread keeps the careful close. */
static void finish(FCGX_Request *fr)
{
	if (FCGX_GetChar(fr->in) == EOF && FCGX_HasSeenEOF(fr->in) == EOF)
		FCGX_Detach(fr);
	FCGX_Finish_r(fr);
}

static void send_reply(FCGX_Request *fr, struct http_req *req)
{
	size_t len;
	char *out;

	if (strcmp(req->request_id, "-") != 0)
		http_add_header(req, "X-Request-Id", req->request_id);
	out = http_serialize(req, &len);
	if (out) {
		FCGX_PutStr(out, (int)len, fr->out);
	} else {
		static const char oom[] =
			"Status: 500 Internal Server Error\r\n"
			"Content-Type: application/json\r\n\r\n"
			"{\"error\":{\"code\":\"internal\",\"message\":\"out of memory\"}}";
		FCGX_PutStr(oom, sizeof(oom) - 1, fr->out);
		req->resp.status = 500;
	}
}

static void serve(FCGX_Request *fr, struct arena *a)
{
	struct http_req req;
	uint64_t t0 = mono_us(), dt;
	size_t idx;

	http_req_init(&req, a, fr->envp, fcgx_read, fr->in);
	req.write = fcgx_write;
	req.write_ctx = fr->out;
	dispatch(&req, &idx);
	/* a transaction a handler left open must not leak into the next request */
	db_rollback();
	/* a streamed reply (http_stream_begin) was written by its handler */
	if (!req.streamed)
		send_reply(fr, &req);
	dt = mono_us() - t0;
	metrics_observe(idx, req.resp.status, dt);
	log_request(req.method, req.path, req.resp.status, dt, req.request_id);
	json_object_put(req.json);
	finish(fr);
	arena_reset(a);
}

/* The listening socket in an epoll set of this worker's own, registered
 * EPOLLEXCLUSIVE: a connection wakes one idle worker, not all of them (with
 * poll every idle worker woke, and all but one paid an accept that failed
 * with EAGAIN and another wait: under load, more system calls than the
 * request itself made).  -1 with errno. */
static int listen_epoll(int fd)
{
	struct epoll_event ev = {.events = EPOLLIN | EPOLLEXCLUSIVE};
	int ep = epoll_create1(EPOLL_CLOEXEC);

	if (ep < 0)
		return -1;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
		int e = errno;

		close(ep);
		errno = e;
		return -1;
	}
	return ep;
}

/* Waits until the listening socket (in the epoll set ep) is readable or
 * SIGTERM arrives, at most timeout_ms (-1: no limit).  SIGTERM is blocked
 * everywhere else, so it can only interrupt this wait: a request in
 * progress is never cut short by it. */
static int wait_readable(int ep, const sigset_t *unblocked, int timeout_ms)
{
	struct epoll_event ev;
	int n = epoll_pwait(ep, &ev, 1, timeout_ms, unblocked);

	if (n < 0 && errno != EINTR)
		return -1;
	return n > 0;
}

/* The graceful signals: TERM (scripts, the contract) and INT; and QUIT,
 * because multiwatch 1.0.0 (Debian 12) sends the signal before the one its
 * -s names: `-s TERM` delivers SIGQUIT, whose default action killed every
 * worker in the middle of its request when a pool stopped, restarted or
 * scaled (checked with a shell child trapping each signal). */
static const int graceful_signals[] = {SIGTERM, SIGINT, SIGQUIT};

static int setup_signals(sigset_t *unblocked)
{
	struct sigaction sa;
	sigset_t block;
	size_t i;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_term;
	sigemptyset(&sa.sa_mask);
	sigemptyset(&block);
	for (i = 0; i < sizeof(graceful_signals) / sizeof(graceful_signals[0]); i++) {
		if (sigaction(graceful_signals[i], &sa, NULL) < 0)
			return -1;
		sigaddset(&block, graceful_signals[i]);
	}
	signal(SIGPIPE, SIG_IGN); /* a client gone mid-reply is not our death */
	if (sigprocmask(SIG_BLOCK, &block, unblocked) < 0)
		return -1;
	for (i = 0; i < sizeof(graceful_signals) / sizeof(graceful_signals[0]); i++)
		sigdelset(unblocked, graceful_signals[i]);
	return 0;
}

/* A pool on TCP (scripts: TH_FCGI_BIND) serves only the callers listed in
 * FCGI_WEB_SERVER_ADDRS: libfcgi closes any other connection at accept.
 * libfcgi checks IPv4 callers only, so a TCP listener without that list,
 * or an IPv6 one, would serve whoever can connect: refused at start.  A
 * unix socket is guarded by its mode and group.  -1 with a message. */
static int listen_check(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	const char *allowed = cfg_str("FCGI_WEB_SERVER_ADDRS", NULL);

	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
		fprintf(stderr, "%s: stdin is not the FastCGI socket (run under spawn-fcgi)\n",
			the_app->name);
		return -1;
	}
	if (ss.ss_family == AF_UNIX)
		return 0;
	if (ss.ss_family != AF_INET) {
		fprintf(stderr,
			"%s: FastCGI over TCP listens on IPv4 only "
			"(libfcgi checks the callers of IPv4 only)\n",
			the_app->name);
		return -1;
	}
	if (!allowed || !*allowed) {
		fprintf(stderr,
			"%s: FastCGI on TCP without FCGI_WEB_SERVER_ADDRS "
			"(the callers allowed): refused\n",
			the_app->name);
		return -1;
	}
	log_info("FastCGI on TCP, callers allowed: %s", allowed);
	return 0;
}

static int init_services(void)
{
	const char *pg = cfg_str("TH_DB_CONNINFO", NULL);

	if (!pg) {
		fprintf(stderr, "%s: TH_DB_CONNINFO is not set\n", the_app->name);
		return -1;
	}
	if (db_init(pg, cfg_str("TH_DB_READ_CONNINFO", NULL),
		    (long)cfg_int("TH_DB_STATEMENT_TIMEOUT_MS", 5000, 0, 600000)) < 0)
		return -1;
	/* one server (its unix socket when the stack offers one), Sentinel or
	 * Cluster: cache_init_env reads which */
	if (cache_init_env((long)cfg_int("TH_REDIS_TIMEOUT_MS", 250, 1, 60000), 1) < 0)
		return -1;
	return 0;
}

int app_main(const struct app *app)
{
	FCGX_Request fr;
	struct arena arena;
	sigset_t unblocked;
	int listen_fd = 0, listen_ep, rc, flags;
	uint64_t drain_until = 0, signal_check = 0;

	the_app = app;
	log_init(app->name);
	with_test_routes = cfg_bool("TH_TEST_ROUTES", false);
	default_body_limit = (size_t)cfg_int("TH_BODY_LIMIT", APP_DEFAULT_BODY_LIMIT, 1,
					     1024L * 1024 * 1024);
	if (table_build(app) < 0 || init_services() < 0)
		return 1;
	if (token_init() < 0)
		return 1;
	/* metrics first: an app's init may register its counters */
	if (metrics_setup(app) < 0)
		return 1;
	if (app->init && app->init() != 0) {
		fprintf(stderr, "%s: init failed\n", app->name);
		return 1;
	}
	if (listen_check(listen_fd) < 0)
		return 1;
	if (FCGX_Init() != 0 || FCGX_InitRequest(&fr, listen_fd, 0) != 0) {
		fprintf(stderr, "%s: FastCGI init failed\n", app->name);
		return 1;
	}
	if (setup_signals(&unblocked) < 0) {
		fprintf(stderr, "%s: signals: %s\n", app->name, strerror(errno));
		return 1;
	}
	/* Non-blocking accept: a worker woken for a connection another took
	 * gets EAGAIN and waits again instead of blocking in accept(2) where
	 * SIGTERM could not reach it.  Accepted sockets are blocking
	 * again (Linux does not inherit O_NONBLOCK through accept). */
	flags = fcntl(listen_fd, F_GETFL);
	if (flags < 0 || fcntl(listen_fd, F_SETFL, flags | O_NONBLOCK) < 0) {
		fprintf(stderr, "%s: stdin is not the FastCGI socket (run under spawn-fcgi)\n",
			app->name);
		return 1;
	}
	listen_ep = listen_epoll(listen_fd);
	if (listen_ep < 0) {
		fprintf(stderr, "%s: epoll: %s\n", app->name, strerror(errno));
		return 1;
	}
	arena_init(&arena);
	log_info("worker started (%zu routes%s)", ntable,
		 with_test_routes ? ", test routes on" : "");

	/* A worker accepts first and waits only when nothing is queued: under
	 * load it goes from one request to the next without a wait (a system
	 * call a request).  SIGTERM, blocked outside the wait, is then taken
	 * by a zero wait every APP_SIGNAL_CHECK_MS. */
	for (;;) {
		if (stopping && !drain_until)
			drain_until = mono_us() + APP_DRAIN_MS * 1000u;
		if (drain_until && mono_us() > drain_until)
			break;
		if (!stopping && mono_us() >= signal_check) {
			if (wait_readable(listen_ep, &unblocked, 0) < 0) {
				log_error("epoll: %s", strerror(errno));
				break;
			}
			signal_check = mono_us() + APP_SIGNAL_CHECK_MS * 1000u;
			continue;
		}
		rc = FCGX_Accept_r(&fr);
		if (rc == -EAGAIN || rc == -EWOULDBLOCK) {
			if (stopping)
				break; /* nothing queued: drained */
			if (wait_readable(listen_ep, &unblocked, -1) < 0) {
				log_error("epoll: %s", strerror(errno));
				break;
			}
			continue; /* readable, or SIGTERM: start draining */
		}
		if (rc < 0) {
			log_error("accept failed: %d", rc);
			break;
		}
		serve(&fr, &arena);
	}
	log_info("worker exiting");
	if (app->fini)
		app->fini();
	metrics_close();
	token_close();
	db_close();
	cache_close();
	arena_free(&arena);
	close(listen_ep);
	return 0;
}
