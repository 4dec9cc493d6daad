/* token: access tokens (JWT) — verified by every component, issued by auth.
 *
 * Verification needs the public key alone (ES256) or the shared secret
 * (HS256, selected by TH_JWT_ALG).  It refuses: a malformed token, any `alg`
 * other than the configured one ("none" included, checked before any
 * signature work), an unknown `kid`, a bad signature, a wrong `iss`, an
 * expired token, and a token whose session is revoked (lib/revoke).  Verified
 * tokens are kept in a bounded in-process cache, so a repeated token costs a
 * hash and a compare; expiry and revocation are still checked on every call.
 *
 * Settings (environment): TH_JWT_ALG, TH_JWT_PUBLIC_KEY, TH_JWT_PRIVATE_KEY,
 * TH_JWT_SECRET_FILE, TH_JWT_ISSUER, TH_ACCESS_TTL (docs/stack-contract.md). */
#ifndef TH_TOKEN_H
#define TH_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "err.h"

#define TOKEN_MAX_LEN 4096

struct json_object;

struct token_claims {
	int64_t user_id;    /* sub */
	int64_t session_id; /* sid */
	int64_t issued_at;  /* iat, unix seconds */
	int64_t expires_at; /* exp, unix seconds */
};

/* Loads the verification key from the environment.  -1 with a message on
 * stderr when it is missing or unreadable (fail fast at start-up). */
int token_init(void);
/* Also loads the signing key (auth only) and checks it matches the public
 * key.  -1 with a message on stderr otherwise. */
int token_init_signer(void);
void token_close(void);

/* Verifies a compact JWT (not NUL-terminated: len bytes).
 * TH_OK and *out filled; TH_EUNAUTHORIZED for any invalid token;
 * TH_EUNAVAILABLE when revocation cannot be decided (Redis and PostgreSQL
 * both down). */
enum th_err token_verify(const char *token, size_t len, struct token_claims *out);

/* Signs an access token for the session; the string lives in the arena.
 * NULL on failure (logged). */
char *token_issue(struct arena *a, int64_t user_id, int64_t session_id);

/* Access token lifetime in seconds (TH_ACCESS_TTL). */
long token_ttl(void);
/* The key id of the configured key (16 hex chars). */
const char *token_kid(void);
/* {"keys":[...]} — the public JWK for ES256, no key for HS256.  New object. */
struct json_object *token_jwks(void);

/* Verification without the cache, for the benchmark: same checks. */
enum th_err token_verify_uncached(const char *token, size_t len, struct token_claims *out);
/* Signature, header and claims including expiry, but no revocation check
 * and no cache: what a token proves by itself (unit tests). */
enum th_err token_check_signed(const char *token, size_t len, struct token_claims *out);

#endif
