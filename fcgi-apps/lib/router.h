/* router: a static route table per app, matched on method and path.
 *
 * Patterns are literal segments and ":name" segments ("/api/posts/:id").  A
 * path that matches no pattern is ROUTER_NOT_FOUND; one that matches a pattern
 * under another method is ROUTER_METHOD_NOT_ALLOWED, with the allowed methods
 * listed for the Allow header.  Matching never allocates. */
#ifndef TH_ROUTER_H
#define TH_ROUTER_H

#include <stddef.h>

#include "http.h"

typedef void (*route_handler)(struct http_req *req);

enum route_flags {
	ROUTE_JSON = 1u << 0,          /* body must be a JSON object: parsed into req->json */
	ROUTE_TEST = 1u << 1,          /* exists only when TH_TEST_ROUTES is on */
	ROUTE_AUTH = 1u << 2,          /* needs a valid access token (req->user_id set) */
	ROUTE_AUTH_OPTIONAL = 1u << 3, /* a token, when present, must be valid */
	ROUTE_STREAM = 1u << 4,        /* the body is not read by the loop: the handler
				 * streams it with http_read_chunk() (uploads); the
				 * route's body_limit is still enforced on
				 * Content-Length before the handler runs */
};

struct route {
	const char *method;  /* "GET", "POST", ... */
	const char *pattern; /* "/api/posts/:id" */
	route_handler handler;
	unsigned flags;
	size_t body_limit; /* bytes; 0: the app's default */
};

/* An app's table is a static array with no end marker; its length is
 * ROUTES_COUNT(table), which the compiler works out. */
#define ROUTES_COUNT(table) (sizeof(table) / sizeof((table)[0]))

enum router_result {
	ROUTER_FOUND = 0,
	ROUTER_NOT_FOUND,
	ROUTER_METHOD_NOT_ALLOWED,
};

struct route_match {
	const struct route *route;
	size_t index; /* in the table */
	int nparams;
	const char *param_names[HTTP_MAX_PARAMS]; /* into the pattern */
	size_t param_name_lens[HTTP_MAX_PARAMS];
	const char *params[HTTP_MAX_PARAMS]; /* into the path, undecoded */
	size_t param_lens[HTTP_MAX_PARAMS];
	char allow[64]; /* "GET, POST" on METHOD_NOT_ALLOWED */
};

/* Matches method + path (raw, without the query) against the table.
 * Routes whose flags include ROUTE_TEST are skipped unless with_test. */
enum router_result router_match(const struct route *table, size_t n, const char *method,
				const char *path, int with_test, struct route_match *m);

/* Checks a table at start-up: patterns begin with '/', parameter names are
 * non-empty, at most HTTP_MAX_PARAMS parameters, no method+pattern twice.
 * Returns 0, or -1 with a reason in err. */
int router_validate(const struct route *table, size_t n, char *err, size_t errsize);

#endif
