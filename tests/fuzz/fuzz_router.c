/* fuzz_router: router_match over every route the apps declare, then the
 * percent-decoding of the parameters the app loop does (fcgi-apps/lib/app.c).
 *
 * Input: a flags byte (bit 0: test routes on), the method, NUL, the raw
 * path.  Checks: a match names a route of that method whose pattern has as
 * many parameters as were found; each parameter is a non-empty run of the
 * path without '/'; Allow lists only methods that exist. */
#include <string.h>

#include "fuzz.h"
#include "router.h"

static void handler(struct http_req *req)
{
	(void)req;
}

/* the patterns of fcgi-apps/{auth,community,media,realtime}/main.c */
static const struct route table[] = {
	{"DELETE", "/api/comments/:id", handler, ROUTE_AUTH, 0},
	{"DELETE", "/api/communities/:id", handler, ROUTE_AUTH, 0},
	{"DELETE", "/api/communities/:id/bans/:user_id", handler, ROUTE_AUTH, 0},
	{"DELETE", "/api/communities/:id/members/:user_id", handler, ROUTE_AUTH, 0},
	{"DELETE", "/api/media/:id", handler, ROUTE_AUTH, 0},
	{"DELETE", "/api/messages/:id", handler, ROUTE_AUTH, 0},
	{"DELETE", "/api/posts/:id", handler, ROUTE_AUTH, 0},
	{"DELETE", "/api/posts/:id/reactions/:emoji", handler, ROUTE_AUTH, 0},
	{"GET", "/api/auth/jwks", handler, 0, 0},
	{"GET", "/api/auth/me", handler, ROUTE_AUTH, 0},
	{"GET", "/api/calls/:id", handler, ROUTE_AUTH, 0},
	{"GET", "/api/channels/:id/messages", handler, ROUTE_AUTH, 0},
	{"GET", "/api/communities", handler, ROUTE_AUTH_OPTIONAL, 0},
	{"GET", "/api/communities/:id", handler, ROUTE_AUTH_OPTIONAL, 0},
	{"GET", "/api/communities/:id/bans", handler, ROUTE_AUTH, 0},
	{"GET", "/api/communities/:id/channels", handler, ROUTE_AUTH_OPTIONAL, 0},
	{"GET", "/api/communities/:id/members", handler, ROUTE_AUTH_OPTIONAL, 0},
	{"GET", "/api/communities/:id/posts", handler, ROUTE_AUTH_OPTIONAL, 0},
	{"GET", "/api/communities/:id/search", handler, ROUTE_AUTH_OPTIONAL, 0},
	{"GET", "/api/media/:id", handler, ROUTE_AUTH_OPTIONAL, 0},
	{"GET", "/api/messages/:id", handler, ROUTE_AUTH, 0},
	{"GET", "/api/posts/:id", handler, ROUTE_AUTH_OPTIONAL, 0},
	{"GET", "/api/posts/:id/comments", handler, ROUTE_AUTH_OPTIONAL, 0},
	{"GET", "/api/turn", handler, ROUTE_AUTH, 0},
	{"GET", "/media/:id/:variant", handler, ROUTE_AUTH_OPTIONAL, 0},
	{"PATCH", "/api/communities/:id", handler, ROUTE_AUTH | ROUTE_JSON, 0},
	{"PATCH", "/api/messages/:id", handler, ROUTE_AUTH | ROUTE_JSON, 0},
	{"PATCH", "/api/posts/:id", handler, ROUTE_AUTH | ROUTE_JSON, 0},
	{"POST", "/api/auth/login", handler, ROUTE_JSON, 0},
	{"POST", "/api/auth/logout", handler, ROUTE_AUTH, 0},
	{"POST", "/api/auth/refresh", handler, ROUTE_JSON, 0},
	{"POST", "/api/auth/register", handler, ROUTE_JSON, 0},
	{"POST", "/api/calls", handler, ROUTE_AUTH | ROUTE_JSON, 0},
	{"POST", "/api/calls/:id/join", handler, ROUTE_AUTH, 0},
	{"POST", "/api/calls/:id/leave", handler, ROUTE_AUTH, 0},
	{"POST", "/api/channels/:id/messages", handler, ROUTE_AUTH | ROUTE_JSON, 0},
	{"POST", "/api/communities", handler, ROUTE_AUTH | ROUTE_JSON, 0},
	{"POST", "/api/communities/:id/bans", handler, ROUTE_AUTH | ROUTE_JSON, 0},
	{"POST", "/api/communities/:id/channels", handler, ROUTE_AUTH | ROUTE_JSON, 0},
	{"POST", "/api/communities/:id/join", handler, ROUTE_AUTH, 0},
	{"POST", "/api/communities/:id/leave", handler, ROUTE_AUTH, 0},
	{"POST", "/api/communities/:id/posts", handler, ROUTE_AUTH | ROUTE_JSON, 0},
	{"POST", "/api/media", handler, ROUTE_AUTH | ROUTE_STREAM, 0},
	{"POST", "/api/posts/:id/comments", handler, ROUTE_AUTH | ROUTE_JSON, 0},
	{"PUT", "/api/communities/:id/members/:user_id", handler, ROUTE_AUTH | ROUTE_JSON, 0},
	{"PUT", "/api/posts/:id/reactions/:emoji", handler, ROUTE_AUTH, 0},
	{"POST", "/api/test/:a/:b/:c/:d/:e/:f/:g/:h", handler, ROUTE_TEST, 0},
	{"GET", "/api/test/reset", handler, ROUTE_TEST, 0},
};
#define NTABLE (sizeof(table) / sizeof(table[0]))

static int count_params(const char *pattern)
{
	int n = 0;

	for (const char *p = pattern; *p; p++)
		n += p[0] == '/' && p[1] == ':';
	return n;
}

static int known_method(const char *m, size_t n)
{
	for (size_t i = 0; i < NTABLE; i++)
		if (strlen(table[i].method) == n && memcmp(table[i].method, m, n) == 0)
			return 1;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int checked;
	struct fz f = {data, size};
	unsigned flags = fz_byte(&f);
	char *method = fz_str(&f, NULL), *path = fz_str(&f, NULL), err[128];
	struct route_match m;
	enum router_result rr;
	size_t plen = strlen(path);
	struct arena a;
	int i;

	if (!checked) {
		FZ_CHECK(router_validate(table, NTABLE, err, sizeof(err)) == 0);
		checked = 1;
	}
	rr = router_match(table, NTABLE, method, path, flags & 1, &m);
	arena_init(&a);
	switch (rr) {
	case ROUTER_FOUND:
		FZ_CHECK(m.route == &table[m.index]);
		FZ_CHECK(strcmp(m.route->method, method) == 0);
		FZ_CHECK((flags & 1) || !(m.route->flags & ROUTE_TEST));
		FZ_CHECK(m.nparams == count_params(m.route->pattern));
		FZ_CHECK(plen <= HTTP_PATH_MAX);
		for (i = 0; i < m.nparams; i++) {
			char *v;

			FZ_CHECK(m.params[i] > path &&
				 m.params[i] + m.param_lens[i] <= path + plen);
			FZ_CHECK(m.param_lens[i] > 0);
			FZ_CHECK(!memchr(m.params[i], '/', m.param_lens[i]));
			FZ_CHECK(m.params[i][-1] == '/');
			FZ_CHECK(m.param_name_lens[i] > 0);
			v = http_decode(&a, m.params[i], m.param_lens[i], false);
			FZ_CHECK(!v || strlen(v) <= m.param_lens[i]);
		}
		break;
	case ROUTER_METHOD_NOT_ALLOWED: {
		const char *p = m.allow;

		FZ_CHECK(memchr(m.allow, '\0', sizeof(m.allow)));
		FZ_CHECK(m.allow[0]);
		/* "GET, POST": each name one of the table's methods */
		while (*p) {
			size_t n = strcspn(p, ",");

			FZ_CHECK(known_method(p, n));
			p += n;
			if (*p == ',') {
				FZ_CHECK(p[1] == ' ');
				p += 2;
			}
		}
		FZ_CHECK(strcmp(method, "GET") != 0 || !strstr(m.allow, "GET") ||
			 strstr(m.allow, "GET")[3] != '\0');
		break;
	}
	case ROUTER_NOT_FOUND:
		break;
	default:
		FZ_CHECK(!"router_match returned no result it documents");
	}
	arena_free(&a);
	free(method);
	free(path);
	return 0;
}
