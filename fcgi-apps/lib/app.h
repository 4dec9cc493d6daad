/* app: the worker loop every Townhall FastCGI app shares.
 *
 * An app declares its name and route table and calls app_main().  The loop
 * reads settings, validates the table, opens the metrics file, then for each
 * request: matches the route (404/405 here), enforces the body limit and
 * parses JSON bodies (413/400 here), calls the handler, sends its response,
 * counts it and logs one line.  Handlers assume those checks passed.
 *
 * Built-in routes added to every app:
 *   GET  /api/<name>/health   PostgreSQL and Redis reachable? 200 or 503
 *   GET  /metrics/<name>      Prometheus text of the pool (nginx: loopback only)
 *   POST /api/<name>/echo     test-only (TH_TEST_ROUTES=1): echoes a JSON body
 *
 * Signals: SIGTERM asks for a graceful exit: the request in progress
 * finishes, what is already queued on the socket is served (for at most
 * 2 s), then the worker exits 0 and multiwatch starts a fresh one. */
#ifndef TH_APP_H
#define TH_APP_H

#include <stddef.h>

#include "router.h"

#define APP_DEFAULT_BODY_LIMIT (64 * 1024)

struct app {
	const char *name; /* pool name: "auth", "community", ... */
	const struct route *routes;
	size_t nroutes;
	/* Optional: after settings and connections are set up, before the first
	 * request.  Non-zero: the worker exits with a message (fail fast). */
	int (*init)(void);
	void (*fini)(void);
	/* Optional: the name of a non-FastCGI component (the bridge) whose
	 * metrics file this app also serves, at GET /metrics/<name>. */
	const char *serves_metrics_of;
};

int app_main(const struct app *app);

/* The pool this worker belongs to (app->name). */
const char *app_name(void);

#endif
