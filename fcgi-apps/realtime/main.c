/* th-realtime: the realtime FastCGI app — message history and posting,
 * calls, TURN credentials (API.md: Channels, messages, calls); DMs, blocks,
 * read markers and unread counts, Web Push subscriptions (API.md v1.1).  Channels
 * themselves are created and listed by the community app.
 *
 * main.c holds the route table; each resource lives in a file of its own.
 * The shared loop (fcgi-apps/lib/app.c) adds GET /api/realtime/health and
 * GET /metrics/realtime to this table. */
#include <sodium.h>
#include <stdio.h>

#include "app.h"
#include "userlimits.h"
#include "realtime.h"

#define A ROUTE_AUTH
#define J ROUTE_JSON
#define L RT_BODY_LIMIT

/* method, pattern, handler, flags, body limit */
static const struct route routes[] = {
	{"GET", "/api/channels/:id/messages", messages_list, A, 0},
	{"POST", "/api/channels/:id/messages", messages_create, A | J, L},
	/* before /api/messages/:id, which would match it (first match wins) */
	{"GET", "/api/messages/search", messages_search, A, 0},
	{"GET", "/api/messages/:id", messages_get, A, 0},
	{"PATCH", "/api/messages/:id", messages_patch, A | J, L},
	{"DELETE", "/api/messages/:id", messages_delete, A, 0},
	{"GET", "/api/messages/:id/history", messages_history, A, 0},
	{"POST", "/api/calls", calls_create, A | J, L},
	{"GET", "/api/calls/:id", calls_get, A, 0},
	{"POST", "/api/calls/:id/join", calls_join, A, 0},
	{"POST", "/api/calls/:id/leave", calls_leave, A, 0},
	{"GET", "/api/turn", turn_get, A, 0},
	{"POST", "/api/dms", dms_create, A | J, 4096},
	{"GET", "/api/dms", dms_list, A, 0},
	{"POST", "/api/dms/:id/leave", dms_leave, A, 0},
	{"PUT", "/api/users/:id/block", blocks_put, A, 0},
	{"DELETE", "/api/users/:id/block", blocks_delete, A, 0},
	{"GET", "/api/users/me/blocks", blocks_list, A, 0},
	{"GET", "/api/notifications", notifications_list, A, 0},
	{"POST", "/api/notifications/read", notifications_read, A | J, 16384},
	{"PUT", "/api/channels/:id/read", reads_put, A | J, 1024},
	{"GET", "/api/me/unread", reads_unread, A, 0},
	{"GET", "/api/push/vapid", push_vapid, 0, 0},
	{"PUT", "/api/push/subscriptions", push_subscribe, A | J, 4096},
	{"DELETE", "/api/push/subscriptions", push_unsubscribe, A | J, 4096},
};

static int realtime_init(void)
{
	if (sodium_init() < 0) {
		fprintf(stderr, "realtime: libsodium failed to initialize\n");
		return -1;
	}
	limits_init();
	if (calls_init() < 0 || turn_init() < 0 || push_init() < 0)
		return -1;
	return 0;
}

int main(void)
{
	static const struct app app = {
		.name = "realtime",
		.routes = routes,
		.nroutes = ROUTES_COUNT(routes),
		.init = realtime_init,
		.serves_metrics_of = "bridge", /* GET /metrics/bridge */
	};

	return app_main(&app);
}
