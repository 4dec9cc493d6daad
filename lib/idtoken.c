/* idtoken: JWKS parsing (OpenSSL 3 key building) and ID token checks. */
#include "idtoken.h"

#include <json-c/json.h>
#include <openssl/core_names.h>
#include <openssl/param_build.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jhcore.h"
#include "jws.h"

#define IDT_HEADER_MAX 1024
#define IDT_RSA_MIN_BITS 2048
#define IDT_RSA_MAX_BYTES 1024 /* 8192-bit modulus */
#define IDT_SUB_MAX 255

static const char *const reasons[IDT_RESULT_COUNT] = {
	[IDT_OK] = "ok",
	[IDT_MALFORMED] = "malformed ID token",
	[IDT_UNKNOWN_KID] = "ID token signed by an unknown key",
	[IDT_BAD_SIGNATURE] = "ID token signature does not verify",
	[IDT_BAD_ISSUER] = "ID token from another issuer",
	[IDT_BAD_AUDIENCE] = "ID token for another client",
	[IDT_BAD_NONCE] = "ID token nonce does not match",
	[IDT_BAD_TIME] = "ID token expired or not yet valid",
	[IDT_NO_SUBJECT] = "ID token without a subject",
};

const char *idt_strerror(enum idt_result r)
{
	return (int)r >= 0 && r < IDT_RESULT_COUNT ? reasons[r] : "invalid ID token";
}

/* base64url (no padding) of a JSON string member into out (at most size
 * bytes).  The decoded length, or -1. */
static long b64_member(struct json_object *o, const char *name, unsigned char *out, size_t size)
{
	struct json_object *v;
	const char *s;
	size_t n;

	if (!json_object_object_get_ex(o, name, &v) || !json_object_is_type(v, json_type_string))
		return -1;
	s = json_object_get_string(v);
	if (sodium_base642bin(out, size, s, strlen(s), NULL, &n, NULL,
			      sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0)
		return -1;
	return (long)n;
}

/* An EVP_PKEY from OSSL_PARAMs built by bld; NULL on failure. */
static EVP_PKEY *key_from(const char *type, OSSL_PARAM_BLD *bld)
{
	OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
	EVP_PKEY *pk = NULL;

	if (!params || !ctx || EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_PUBLIC_KEY, params) != 1)
		pk = NULL;
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	return pk;
}

static EVP_PKEY *rsa_key(struct json_object *jwk)
{
	unsigned char n[IDT_RSA_MAX_BYTES], e[16];
	long nl = b64_member(jwk, "n", n, sizeof(n)), el = b64_member(jwk, "e", e, sizeof(e));
	BIGNUM *bn = NULL, *be = NULL;
	OSSL_PARAM_BLD *bld = NULL;
	EVP_PKEY *pk = NULL;

	if (nl <= 0 || el <= 0)
		return NULL;
	bn = BN_bin2bn(n, (int)nl, NULL);
	be = BN_bin2bn(e, (int)el, NULL);
	bld = OSSL_PARAM_BLD_new();
	if (!bn || !be || !bld || BN_num_bits(bn) < IDT_RSA_MIN_BITS ||
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) != 1 ||
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be) != 1)
		goto out;
	pk = key_from("RSA", bld);
out:
	OSSL_PARAM_BLD_free(bld);
	BN_free(bn);
	BN_free(be);
	return pk;
}

static EVP_PKEY *ec_key(struct json_object *jwk)
{
	unsigned char pub[65], tmp[48];
	const char *crv = jh_member_str(jwk, "crv");
	OSSL_PARAM_BLD *bld = NULL;
	EVP_PKEY *pk = NULL;

	if (!crv || strcmp(crv, "P-256") != 0)
		return NULL;
	pub[0] = 0x04; /* uncompressed point: 04 || x || y */
	if (b64_member(jwk, "x", tmp, sizeof(tmp)) != 32)
		return NULL;
	memcpy(pub + 1, tmp, 32);
	if (b64_member(jwk, "y", tmp, sizeof(tmp)) != 32)
		return NULL;
	memcpy(pub + 33, tmp, 32);
	bld = OSSL_PARAM_BLD_new();
	/* fromdata checks that the point is on the curve */
	if (bld &&
	    OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) ==
		    1 &&
	    OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof(pub)) == 1)
		pk = key_from("EC", bld);
	OSSL_PARAM_BLD_free(bld);
	return pk;
}

/* One JWK into k; 0, or -1 when it is not a key we use. */
static int key_parse(struct json_object *jwk, struct idt_key *k)
{
	const char *kty = jh_member_str(jwk, "kty"), *use = jh_member_str(jwk, "use"),
		   *alg = jh_member_str(jwk, "alg"), *kid = jh_member_str(jwk, "kid");

	if (!kty || (use && strcmp(use, "sig") != 0) || (kid && strlen(kid) >= IDT_KID_MAX))
		return -1;
	if (strcmp(kty, "RSA") == 0 && (!alg || strcmp(alg, "RS256") == 0)) {
		k->alg = IDT_RS256;
		k->pkey = rsa_key(jwk);
	} else if (strcmp(kty, "EC") == 0 && (!alg || strcmp(alg, "ES256") == 0)) {
		k->alg = IDT_ES256;
		k->pkey = ec_key(jwk);
	} else {
		return -1;
	}
	if (!k->pkey)
		return -1;
	snprintf(k->kid, sizeof(k->kid), "%s", kid ? kid : "");
	return 0;
}

int idt_keys_parse(const char *json, size_t len, struct idt_keys *out)
{
	struct json_object *doc = jh_parse(json, len), *arr;
	size_t i, n;
	int rc = -1;

	idt_keys_clear(out);
	if (!doc || !json_object_is_type(doc, json_type_object) ||
	    !json_object_object_get_ex(doc, "keys", &arr) ||
	    !json_object_is_type(arr, json_type_array))
		goto out;
	n = json_object_array_length(arr);
	for (i = 0; i < n && out->n < IDT_MAX_KEYS; i++) {
		struct json_object *jwk = json_object_array_get_idx(arr, i);

		if (json_object_is_type(jwk, json_type_object) &&
		    key_parse(jwk, &out->keys[out->n]) == 0)
			out->n++;
	}
	rc = 0;
out:
	json_object_put(doc);
	return rc;
}

void idt_keys_clear(struct idt_keys *k)
{
	for (int i = 0; i < k->n; i++)
		EVP_PKEY_free(k->keys[i].pkey);
	memset(k, 0, sizeof(*k));
}

/* The key for (alg, kid): the one with that kid, or, when the token names
 * none, the only key of that algorithm. */
static const struct idt_key *key_find(const struct idt_keys *keys, enum idt_alg alg,
				      const char *kid)
{
	const struct idt_key *found = NULL;

	for (int i = 0; i < keys->n; i++) {
		if (keys->keys[i].alg != alg)
			continue;
		if (kid && strcmp(keys->keys[i].kid, kid) == 0)
			return &keys->keys[i];
		if (!kid) {
			if (found)
				return NULL; /* ambiguous */
			found = &keys->keys[i];
		}
	}
	return found;
}

/* base64url of s[0..n) decoded into a malloc'd buffer (NUL-terminated);
 * NULL when not canonical base64url. */
static unsigned char *b64_dup(const char *s, size_t n, size_t *outlen)
{
	size_t cap = n * 3 / 4 + 2;
	unsigned char *buf = malloc(cap + 1);

	if (!buf || sodium_base642bin(buf, cap, s, n, NULL, outlen, NULL,
				      sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0) {
		free(buf);
		return NULL;
	}
	buf[*outlen] = '\0';
	return buf;
}

/* alg and kid of the header; -1 when it is not one we accept. */
static int header_read(const char *h, size_t n, enum idt_alg *alg, char kid[IDT_KID_MAX],
		       int *has_kid)
{
	unsigned char *bin;
	size_t binlen;
	struct json_object *o = NULL, *v;
	const char *a, *k;
	int rc = -1;

	if (n > IDT_HEADER_MAX)
		return -1;
	bin = b64_dup(h, n, &binlen);
	if (!bin)
		return -1;
	o = jh_parse((const char *)bin, binlen);
	if (!o || !json_object_is_type(o, json_type_object) ||
	    json_object_object_get_ex(o, "crit", &v))
		goto out;
	a = jh_member_str(o, "alg");
	if (a && strcmp(a, "RS256") == 0)
		*alg = IDT_RS256;
	else if (a && strcmp(a, "ES256") == 0)
		*alg = IDT_ES256;
	else
		goto out;
	k = jh_member_str(o, "kid");
	if (json_object_object_get_ex(o, "kid", &v) && (!k || strlen(k) >= IDT_KID_MAX))
		goto out;
	*has_kid = k != NULL;
	snprintf(kid, IDT_KID_MAX, "%s", k ? k : "");
	rc = 0;
out:
	json_object_put(o);
	free(bin);
	return rc;
}

static int sig_ok(const struct idt_key *k, const char *input, size_t n, const char *sig,
		  size_t siglen)
{
	unsigned char *raw;
	size_t rawlen;
	int ok = 0;

	raw = b64_dup(sig, siglen, &rawlen);
	if (!raw)
		return 0;
	if (k->alg == IDT_ES256)
		ok = rawlen == JWS_ES256_SIG_LEN && jws_es256_verify(k->pkey, input, n, raw);
	else
		ok = jws_rs256_verify(k->pkey, input, n, raw, rawlen);
	free(raw);
	return ok;
}

/* aud holds the client id (a string, or an array with it); with several
 * audiences, azp must name us (OIDC Core 3.1.3.7 items 3 to 5). */
static int audience_ok(struct json_object *p, const char *client_id)
{
	struct json_object *aud;
	const char *azp = jh_member_str(p, "azp");
	size_t i, n;
	int found = 0;

	if (azp && strcmp(azp, client_id) != 0)
		return 0;
	if (!json_object_object_get_ex(p, "aud", &aud))
		return 0;
	if (json_object_is_type(aud, json_type_string))
		return strcmp(json_object_get_string(aud), client_id) == 0;
	if (!json_object_is_type(aud, json_type_array))
		return 0;
	n = json_object_array_length(aud);
	for (i = 0; i < n; i++) {
		struct json_object *a = json_object_array_get_idx(aud, i);

		if (json_object_is_type(a, json_type_string) &&
		    strcmp(json_object_get_string(a), client_id) == 0)
			found = 1;
	}
	return found && (n == 1 || azp);
}

static enum idt_result claims_check(struct json_object *p, const struct idt_expect *e)
{
	const char *iss = jh_member_str(p, "iss"), *nonce = jh_member_str(p, "nonce"),
		   *sub = jh_member_str(p, "sub");
	int64_t exp, iat;

	if (!iss || strcmp(iss, e->issuer) != 0)
		return IDT_BAD_ISSUER;
	if (!audience_ok(p, e->client_id))
		return IDT_BAD_AUDIENCE;
	if (jh_member_int(p, "exp", &exp) < 0 || jh_member_int(p, "iat", &iat) < 0 ||
	    e->now >= exp + e->leeway_s || iat > e->now + e->leeway_s)
		return IDT_BAD_TIME;
	if (!nonce || !e->nonce || strcmp(nonce, e->nonce) != 0)
		return IDT_BAD_NONCE;
	if (!sub || !*sub || strlen(sub) > IDT_SUB_MAX)
		return IDT_NO_SUBJECT;
	return IDT_OK;
}

enum idt_result idt_verify(const char *token, size_t len, const struct idt_keys *keys,
			   const struct idt_expect *e, struct json_object **claims)
{
	const char *dot1, *dot2;
	char kid[IDT_KID_MAX];
	enum idt_alg alg;
	const struct idt_key *k;
	unsigned char *payload = NULL;
	size_t plen;
	struct json_object *p = NULL;
	int has_kid = 0;
	enum idt_result rc = IDT_MALFORMED;

	*claims = NULL;
	if (jws_split(token, len, IDT_TOKEN_MAX, &dot1, &dot2) < 0)
		return IDT_MALFORMED;
	if (header_read(token, (size_t)(dot1 - token), &alg, kid, &has_kid) < 0)
		return IDT_MALFORMED;
	k = key_find(keys, alg, has_kid ? kid : NULL);
	if (!k)
		return IDT_UNKNOWN_KID;
	if (!sig_ok(k, token, (size_t)(dot2 - token), dot2 + 1, len - (size_t)(dot2 + 1 - token)))
		return IDT_BAD_SIGNATURE;
	payload = b64_dup(dot1 + 1, (size_t)(dot2 - dot1 - 1), &plen);
	if (!payload)
		goto out;
	p = jh_parse((const char *)payload, plen);
	if (!p || !json_object_is_type(p, json_type_object))
		goto out;
	rc = claims_check(p, e);
	if (rc == IDT_OK) {
		*claims = p;
		p = NULL;
	}
out:
	json_object_put(p);
	free(payload);
	return rc;
}

const char *idt_claim_str(struct json_object *claims, const char *name)
{
	return jh_member_str(claims, name);
}

int idt_claim_true(struct json_object *claims, const char *name)
{
	struct json_object *v;

	if (!json_object_object_get_ex(claims, name, &v))
		return 0;
	if (json_object_is_type(v, json_type_boolean))
		return json_object_get_boolean(v);
	return json_object_is_type(v, json_type_string) &&
	       strcmp(json_object_get_string(v), "true") == 0;
}
