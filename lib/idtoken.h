/* idtoken: an OpenID Connect ID token checked against its provider's JWKS.
 *
 * Pure (no I/O): the caller fetches the JWKS document and hands its bytes to
 * idt_keys_parse(); idt_verify() then checks a compact JWS: the header names
 * RS256 or ES256 (nothing else, "none" included, and no `crit`), the key is
 * found by `kid` (or is the only key of that type when the token names
 * none), the signature, then the claims of OIDC Core 3.1.3.7: `iss`, `aud`
 * (a string, or an array holding the client id, with `azp` then equal to
 * it), `exp` and `iat` with a small leeway, `nonce`, and a `sub`.
 * IDT_UNKNOWN_KID tells the caller to fetch the JWKS again (a rotated key);
 * every other failure is final. */
#ifndef TH_IDTOKEN_H
#define TH_IDTOKEN_H

#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>

struct json_object;

#define IDT_MAX_KEYS 16
#define IDT_KID_MAX 128
#define IDT_TOKEN_MAX (16 * 1024)

enum idt_alg { IDT_RS256 = 1, IDT_ES256 = 2 };

struct idt_key {
	char kid[IDT_KID_MAX]; /* "" when the JWK has none */
	enum idt_alg alg;
	EVP_PKEY *pkey; /* owned by the set */
};

struct idt_keys {
	struct idt_key keys[IDT_MAX_KEYS];
	int n;
};

struct idt_expect {
	const char *issuer;    /* the configured issuer, compared exactly */
	const char *client_id; /* our client id: the audience */
	const char *nonce;     /* the nonce sent with the authorization request */
	int64_t now;           /* unix seconds */
	int64_t leeway_s;      /* clock skew allowed on exp and iat */
};

enum idt_result {
	IDT_OK = 0,
	IDT_MALFORMED,     /* not a JWS of RS256/ES256 with a JSON payload */
	IDT_UNKNOWN_KID,   /* no key of the set fits: fetch the JWKS again */
	IDT_BAD_SIGNATURE, /* a key fits, the signature does not verify */
	IDT_BAD_ISSUER,
	IDT_BAD_AUDIENCE, /* aud or azp */
	IDT_BAD_NONCE,
	IDT_BAD_TIME, /* expired, or issued in the future */
	IDT_NO_SUBJECT,
	IDT_RESULT_COUNT
};

/* A short English reason for a result.  Static string. */
const char *idt_strerror(enum idt_result r);

/* Parses a JWKS document (len bytes, {"keys": [...]}) into out (cleared
 * first).  Keys it cannot use are skipped: not for signatures, an algorithm
 * other than RS256/ES256, RSA under 2048 bits, an EC curve other than P-256;
 * at most IDT_MAX_KEYS are kept.  0 (even with no usable key), or -1 when
 * the document is not a JWKS.  The caller releases out with
 * idt_keys_clear(). */
int idt_keys_parse(const char *json, size_t len, struct idt_keys *out);
/* Frees the keys of k and empties it; a zeroed or empty set is fine. */
void idt_keys_clear(struct idt_keys *k);

/* Verifies the token (len bytes, not NUL-terminated) as above.  IDT_OK with
 * *claims set to the payload object (a new reference, the caller puts it),
 * else *claims NULL. */
enum idt_result idt_verify(const char *token, size_t len, const struct idt_keys *keys,
			   const struct idt_expect *e, struct json_object **claims);

/* A string claim of the payload, or NULL when absent or not a string. */
const char *idt_claim_str(struct json_object *claims, const char *name);
/* A boolean claim: 1 true, 0 false or absent (a "true" string counts: some
 * providers send email_verified as a string). */
int idt_claim_true(struct json_object *claims, const char *name);

#endif
