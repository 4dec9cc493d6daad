/* th-community: communities, members, bans, channels, posts, comments,
 * reactions, search (API.md: Communities and members; Posts, comments,
 * reactions, search).
 *
 * main.c holds the route table; each resource lives in a file of its own.
 * The shared loop (fcgi-apps/lib/app.c) adds GET /api/community/health and
 * GET /metrics/community. */
#include "app.h"
#include "community.h"
#include "userlimits.h"
#include "mediaurl.h"

#define A ROUTE_AUTH
#define O ROUTE_AUTH_OPTIONAL
#define J ROUTE_JSON
#define L COMMUNITY_BODY_LIMIT

/* method, pattern, handler, flags, body limit */
static const struct route routes[] = {
	{"POST", "/api/communities", communities_create, A | J, L},
	{"GET", "/api/communities", communities_list, O, 0},
	{"GET", "/api/communities/:id", communities_get, O, 0},
	{"PATCH", "/api/communities/:id", communities_patch, A | J, L},
	{"DELETE", "/api/communities/:id", communities_delete, A, 0},
	{"POST", "/api/communities/:id/join", members_join, A, 0},
	{"POST", "/api/communities/:id/leave", members_leave, A, 0},
	{"GET", "/api/communities/:id/members", members_list, O, 0},
	{"PUT", "/api/communities/:id/members/:user_id", members_put, A | J, L},
	{"DELETE", "/api/communities/:id/members/:user_id", members_delete, A, 0},
	{"POST", "/api/communities/:id/bans", bans_create, A | J, L},
	{"GET", "/api/communities/:id/bans", bans_list, A, 0},
	{"DELETE", "/api/communities/:id/bans/:user_id", bans_delete, A, 0},
	{"POST", "/api/communities/:id/channels", channels_create, A | J, L},
	{"GET", "/api/communities/:id/channels", channels_list, O, 0},
	{"POST", "/api/communities/:id/posts", posts_create, A | J, L},
	{"GET", "/api/communities/:id/posts", posts_feed, O, 0},
	{"GET", "/api/communities/:id/search", search_posts, O, 0},
	{"PUT", "/api/communities/:id/notify", notify_level_put, A | J, 1024},
	{"GET", "/api/posts/:id", posts_get, O, 0},
	{"PATCH", "/api/posts/:id", posts_patch, A | J, L},
	{"DELETE", "/api/posts/:id", posts_delete, A, 0},
	{"GET", "/api/posts/:id/history", posts_history, A, 0},
	{"POST", "/api/posts/:id/comments", comments_create, A | J, L},
	{"GET", "/api/posts/:id/comments", comments_list, O, 0},
	{"DELETE", "/api/comments/:id", comments_delete, A, 0},
	{"GET", "/api/communities/:id/reports", reports_list, A, 0},
	{"GET", "/api/communities/:id/modlog", modlog_list, A, 0},
	/* a 1000-char note, each char up to 12 bytes as a JSON \u escape pair */
	{"POST", "/api/reports", reports_create, A | J, 16384},
	{"POST", "/api/reports/:id/resolve", reports_resolve, A | J, 16384},
	{"GET", "/api/admin/reports", reports_admin_list, A, 0},
	{"GET", "/api/admin/modlog", modlog_admin_list, A, 0},
	{"PUT", "/api/posts/:id/reactions/:emoji", reactions_put, A, 0},
	{"DELETE", "/api/posts/:id/reactions/:emoji", reactions_delete, A, 0},
};

/* posts list their media with signed URLs (lib/mediaurl); the write
 * routes obey the per-user limits of fcgi-apps/lib/userlimits */
static int community_init(void)
{
	limits_init();
	return mediaurl_init();
}

int main(void)
{
	static const struct app app = {
		.name = "community",
		.routes = routes,
		.nroutes = ROUTES_COUNT(routes),
		.init = community_init,
		.serves_metrics_of = "pusher", /* GET /metrics/pusher */
	};

	return app_main(&app);
}
