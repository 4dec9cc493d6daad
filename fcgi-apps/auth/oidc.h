/* oidc: sign-in with configured OpenID Connect providers (API.md v1.1,
 * "Account lifecycle"; docs/operations.md, "OIDC providers").
 *
 * oidcprov.c: the providers of the configuration and what is fetched from
 * them (discovery, JWKS, the token request); oidc.c: the routes. */
#ifndef TH_OIDC_H
#define TH_OIDC_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "http.h"
#include "idtoken.h"

#define OIDC_MAX_PROVIDERS 8
#define OIDC_NAME_MAX 32
#define OIDC_URL_MAX 256
#define OIDC_REDIRECTS_MAX 8
#define OIDC_ID_TOKEN_MAX IDT_TOKEN_MAX
#define OIDC_RETRY_MS 5000 /* after a failed discovery, 503 at once this long */

struct oidc_provider {
	char name[OIDC_NAME_MAX + 1]; /* a-z 0-9 _ : the route's :provider */
	char label[65];               /* shown on the button */
	char issuer[OIDC_URL_MAX];
	char client_id[128];
	char client_secret[256]; /* "" for a public client */
	char redirects[OIDC_REDIRECTS_MAX][OIDC_URL_MAX];
	int nredirects;
	/* discovered (per worker) */
	char authorize_url[OIDC_URL_MAX], token_url[OIDC_URL_MAX], jwks_url[OIDC_URL_MAX];
	uint64_t discovered_ms; /* mono_ms of the fetch, 0: never */
	uint64_t failed_ms;     /* mono_ms of the last failed discovery, 0: none */
	struct idt_keys keys;
	uint64_t keys_ms, keys_tried_ms;
};

/* oidcprov.c */
/* Reads TH_OIDC_PROVIDERS and each provider's settings.  0 (none configured
 * is fine), or -1 with a message on stderr (fail fast). */
int oidcp_init(void);
void oidcp_fini(void);
int oidcp_count(void);
const struct oidc_provider *oidcp_at(int i);
struct oidc_provider *oidcp_find(const char *name);
/* 1 when uri is exactly one of the provider's redirect URIs. */
int oidcp_redirect_allowed(const struct oidc_provider *p, const char *uri);
/* The discovery document, fetched when older than its lifetime.  TH_OK;
 * TH_EUNAVAILABLE when the provider does not answer a usable one in time. */
enum th_err oidcp_discover(struct oidc_provider *p);
/* Exchanges the code (PKCE verifier, the redirect_uri of the authorization
 * request) for the ID token, copied into id_token (size bytes).  TH_OK;
 * TH_EUNAUTHORIZED when the provider refuses the code (used, expired,
 * another client's); TH_EUNAVAILABLE when it does not answer usably. */
enum th_err oidcp_token(struct oidc_provider *p, const char *code, const char *verifier,
			const char *redirect_uri, char *id_token, size_t size);
/* Verifies the ID token against the provider's JWKS (idtoken.h), fetching
 * the key set when it has none or a token names an unknown key.  TH_OK with
 * *claims (a new reference); TH_EUNAUTHORIZED with *why; TH_EUNAVAILABLE. */
enum th_err oidcp_verify(struct oidc_provider *p, const char *id_token, const char *nonce,
			 struct json_object **claims, enum idt_result *why);

/* oidc.c: GET /api/auth/oidc/providers, /:provider/start, /:provider/callback;
 * oidc_init() reads the settings of both files (oidcp_init() included) at
 * start-up: 0, or -1 with a message. */
int oidc_init(void);
void oidc_providers_handler(struct http_req *req);
void oidc_start_handler(struct http_req *req);
void oidc_callback_handler(struct http_req *req);

#endif
