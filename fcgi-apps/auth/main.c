/* th-auth: accounts, tokens, sessions (API.md: Auth).
 *
 * main.c holds the route table; accounts.c, sessions.c, keys.c and
 * password.c hold the handlers.  The shared loop (fcgi-apps/lib/app.c) adds
 * GET /api/auth/health and GET /metrics/auth. */
#include "app.h"
#include "auth.h"
#include "oidc.h"
#include "password.h"
#include "seal.h"
#include "token.h"

/* method, pattern, handler, flags, body limit */
static const struct route routes[] = {
	{"POST", "/api/auth/register", register_handler, ROUTE_JSON, AUTH_BODY_LIMIT},
	{"POST", "/api/auth/login", login_handler, ROUTE_JSON, AUTH_BODY_LIMIT},
	{"POST", "/api/admin/users/:id/suspend", admin_suspend_handler, ROUTE_AUTH, 0},
	{"POST", "/api/admin/users/:id/unsuspend", admin_unsuspend_handler, ROUTE_AUTH, 0},
	{"POST", "/api/auth/refresh", refresh_handler, ROUTE_JSON, AUTH_BODY_LIMIT},
	{"POST", "/api/auth/logout", logout_handler, ROUTE_AUTH, AUTH_BODY_LIMIT},
	{"GET", "/api/auth/me", me_handler, ROUTE_AUTH, 0},
	/* leaving (erase.c, export.c) */
	{"DELETE", "/api/auth/me", erase_handler, ROUTE_AUTH | ROUTE_JSON, AUTH_BODY_LIMIT},
	{"GET", "/api/auth/me/export", export_handler, ROUTE_AUTH, 0},
	{"GET", "/api/auth/jwks", jwks_handler, 0, 0},
	{"GET", "/api/auth/sessions", sessions_list_handler, ROUTE_AUTH, 0},
	{"DELETE", "/api/auth/sessions/:id", sessions_delete_handler, ROUTE_AUTH, 0},
	{"POST", "/api/auth/totp/setup", totp_setup_handler, ROUTE_AUTH, 0},
	{"POST", "/api/auth/totp/enable", totp_enable_handler, ROUTE_AUTH | ROUTE_JSON,
	 AUTH_BODY_LIMIT},
	{"POST", "/api/auth/totp/disable", totp_disable_handler, ROUTE_AUTH | ROUTE_JSON,
	 AUTH_BODY_LIMIT},
	/* account lifecycle (verify.c, recovery.c) */
	{"POST", "/api/auth/verify-email/request", verify_request_handler, ROUTE_AUTH, 0},
	{"POST", "/api/auth/verify-email", verify_handler, ROUTE_JSON, AUTH_BODY_LIMIT},
	{"POST", "/api/auth/email", email_change_handler, ROUTE_AUTH | ROUTE_JSON, AUTH_BODY_LIMIT},
	{"POST", "/api/auth/password/forgot", forgot_handler, ROUTE_JSON, AUTH_BODY_LIMIT},
	{"POST", "/api/auth/password/reset", reset_handler, ROUTE_JSON, AUTH_BODY_LIMIT},
	{"POST", "/api/auth/password", password_change_handler, ROUTE_AUTH | ROUTE_JSON,
	 AUTH_BODY_LIMIT},
	/* sign-in with OIDC providers (oidc.c, oidcprov.c) */
	{"GET", "/api/auth/oidc/providers", oidc_providers_handler, 0, 0},
	{"GET", "/api/auth/oidc/:provider/start", oidc_start_handler, 0, 0},
	{"GET", "/api/auth/oidc/:provider/callback", oidc_callback_handler, 0, 0},
};

static void auth_fini(void)
{
	me_cache_fini();
	oidcp_fini();
	password_limit_close();
}

static int auth_init(void)
{
	if (token_init_signer() < 0 || seal_init() < 0 || accounts_init() < 0 ||
	    me_cache_init() < 0 || oidc_init() < 0)
		return -1;
	acct_limits_init();
	return 0;
}

int main(void)
{
	static const struct app app = {
		.name = "auth",
		.routes = routes,
		.nroutes = ROUTES_COUNT(routes),
		.init = auth_init,
		.fini = auth_fini,
		.serves_metrics_of = "mailer", /* GET /metrics/mailer */
	};

	return app_main(&app);
}
