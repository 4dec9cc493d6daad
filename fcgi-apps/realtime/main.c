/* th-realtime: the realtime FastCGI app — channels, message history, calls, TURN credentials.
 *
 * main.c holds the route table; each resource lives in a file of its own.
 * The shared loop (lib/app.c) adds GET /api/realtime/health and
 * GET /metrics/realtime to this table. */
#include "app.h"

/* method, pattern, handler, flags, body limit */
static const struct route routes[] = {
	/* the resource routes of this app are added by their own issues */
	{0},
};

int main(void)
{
	static const struct app app = {
		.name = "realtime",
		.routes = routes,
		.nroutes = sizeof(routes) / sizeof(routes[0]) - 1, /* without the {0} end */
	};

	return app_main(&app);
}
