/* token: libjwt for signatures, a header pre-check, a verified-token cache. */
#include "token.h"

#include <json-c/json.h>
#include <jwt.h>
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sodium.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "jhcore.h"
#include "jws.h"
#include "log.h"
#include "revoke.h"

#define TOKEN_CACHE_SLOTS 1024 /* power of two */
#define TOKEN_CACHE_MAXLEN 640 /* longer tokens are verified, not cached */
#define TOKEN_KEY_MAX 16384

struct cached {
	uint64_t hash;
	uint16_t len; /* 0: empty */
	char tok[TOKEN_CACHE_MAXLEN];
	struct token_claims claims;
};

static jwt_alg_t alg = JWT_ALG_ES256;
static const char *alg_name = "ES256";
static unsigned char *verify_key; /* PEM public key or HS256 secret */
static int verify_key_len;
static unsigned char *sign_key; /* PEM private key or HS256 secret */
static int sign_key_len;
/* ES256: the private key parsed once.  libjwt 1.x parses the PEM at every
 * signature, which under OpenSSL 3's decoders cost ~0.5 ms a token: a
 * twentieth of a login's CPU beside the argon2id hash. */
static EVP_PKEY *sign_pkey;
/* ES256: the public key parsed once, for the same reason: libjwt parses the
 * PEM at every verify, which held verification to ~2,000 tokens/s a core
 * against ~11,000 for the ECDSA check itself (a reconnect storm of a broker's
 * clients is all verifies). */
static EVP_PKEY *verify_pkey;
static char kid[17];
static char issuer[128];
static long ttl_s;
static struct cached *cache;
static char jwk_x[64], jwk_y[64]; /* base64url coordinates (ES256) */

long token_ttl(void)
{
	return ttl_s;
}
const char *token_kid(void)
{
	return kid;
}

static unsigned char *read_file(const char *path, int *len)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf;
	size_t n;

	if (!f)
		return NULL;
	buf = malloc(TOKEN_KEY_MAX + 1);
	if (!buf) {
		fclose(f);
		return NULL;
	}
	n = fread(buf, 1, TOKEN_KEY_MAX + 1, f);
	fclose(f);
	if (n == 0 || n > TOKEN_KEY_MAX) {
		free(buf);
		return NULL;
	}
	buf[n] = '\0';
	*len = (int)n;
	return buf;
}

static void b64url(char *dst, size_t size, const unsigned char *bin, size_t n)
{
	sodium_bin2base64(dst, size, bin, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

static void hex16(char out[17], const unsigned char *digest)
{
	static const char hx[] = "0123456789abcdef";

	for (int i = 0; i < 8; i++) {
		out[2 * i] = hx[digest[i] >> 4];
		out[2 * i + 1] = hx[digest[i] & 15];
	}
	out[16] = '\0';
}

/* kid and JWK coordinates from the PEM public key. */
static int es256_describe(const unsigned char *pem, int len)
{
	BIO *bio = BIO_new_mem_buf(pem, len);
	EVP_PKEY *pk = bio ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
	unsigned char *der = NULL, digest[crypto_hash_sha256_BYTES];
	unsigned char xy[32];
	BIGNUM *x = NULL, *y = NULL;
	char curve[32];
	int n, rc = -1;

	if (!pk)
		goto out;
	if (!EVP_PKEY_get_utf8_string_param(pk, OSSL_PKEY_PARAM_GROUP_NAME, curve, sizeof(curve),
					    NULL) ||
	    strcmp(curve, "prime256v1") != 0) {
		log_error("token: the public key is not an EC P-256 key");
		goto out;
	}
	n = i2d_PUBKEY(pk, &der);
	if (n <= 0)
		goto out;
	crypto_hash_sha256(digest, der, (unsigned long long)n);
	hex16(kid, digest);
	if (!EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_EC_PUB_X, &x) ||
	    !EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_EC_PUB_Y, &y) ||
	    BN_bn2binpad(x, xy, 32) != 32)
		goto out;
	b64url(jwk_x, sizeof(jwk_x), xy, 32);
	if (BN_bn2binpad(y, xy, 32) != 32)
		goto out;
	b64url(jwk_y, sizeof(jwk_y), xy, 32);
	EVP_PKEY_free(verify_pkey);
	verify_pkey = pk; /* kept for es256_sig_ok() */
	pk = NULL;
	rc = 0;
out:
	BN_free(x);
	BN_free(y);
	OPENSSL_free(der);
	EVP_PKEY_free(pk);
	BIO_free(bio);
	return rc;
}

int token_init(void)
{
	const char *a = cfg_str("TH_JWT_ALG", "ES256");
	const char *path, *var = cfg_str("TH_VAR_DIR", ".");
	char dflt[4096], seq[4096];

	if (sodium_init() < 0)
		return -1;
	if (strcmp(a, "ES256") == 0) {
		alg = JWT_ALG_ES256;
		alg_name = "ES256";
		snprintf(dflt, sizeof(dflt), "%s/keys/jwt-es256.pub.pem", var);
		path = cfg_str("TH_JWT_PUBLIC_KEY", dflt);
	} else if (strcmp(a, "HS256") == 0) {
		alg = JWT_ALG_HS256;
		alg_name = "HS256";
		snprintf(dflt, sizeof(dflt), "%s/keys/jwt-hs256.secret", var);
		path = cfg_str("TH_JWT_SECRET_FILE", dflt);
	} else {
		log_error("token: TH_JWT_ALG must be ES256 or HS256");
		return -1;
	}
	verify_key = read_file(path, &verify_key_len);
	if (!verify_key) {
		log_error("token: cannot read %s key %s", alg_name, path);
		return -1;
	}
	if (alg == JWT_ALG_ES256) {
		if (es256_describe(verify_key, verify_key_len) < 0) {
			log_error("token: %s is not a usable EC P-256 public key", path);
			return -1;
		}
	} else {
		unsigned char digest[crypto_hash_sha256_BYTES];

		/* strip a trailing newline: the secret file is text */
		while (verify_key_len > 0 && (verify_key[verify_key_len - 1] == '\n' ||
					      verify_key[verify_key_len - 1] == '\r'))
			verify_key[--verify_key_len] = '\0';
		if (verify_key_len < 32) {
			log_error("token: the HS256 secret must be at least 32 bytes");
			return -1;
		}
		crypto_hash_sha256(digest, verify_key, (unsigned long long)verify_key_len);
		hex16(kid, digest);
	}
	snprintf(issuer, sizeof(issuer), "%s", cfg_str("TH_JWT_ISSUER", "townhall"));
	ttl_s = (long)cfg_int("TH_ACCESS_TTL", 900, 1, 86400);
	cache = calloc(TOKEN_CACHE_SLOTS, sizeof(*cache));
	if (!cache)
		return -1;
	snprintf(seq, sizeof(seq), "%s/run/revoke.seq", var);
	if (revoke_init(cfg_str("TH_VAR_DIR", NULL) ? seq : NULL, ttl_s) < 0) {
		log_error("token: cannot map %s", seq);
		return -1;
	}
	return 0;
}

/* base64url of n bytes appended at out[*len], NUL-terminated; -1 if it
 * does not fit in size. */
static int b64url_append(char *out, size_t size, size_t *len, const void *bin, size_t n)
{
	size_t need = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);

	if (*len >= size || size - *len < need)
		return -1;
	b64url(out + *len, size - *len, bin, n);
	*len += strlen(out + *len);
	return 0;
}

/* header.payload.signature of two JSON texts, signed with sign_pkey.
 * malloc'd (the caller frees it), or NULL. */
static char *es256_encode(const char *header, const char *payload)
{
	size_t hl = strlen(header), pl = strlen(payload), n = 0, size;
	unsigned char raw[JWS_ES256_SIG_LEN];
	char *out;

	size = 4 * (hl + pl + 64) / 3 + 16; /* three base64url parts, two dots, NUL */
	out = malloc(size);
	if (!out)
		return NULL;
	if (b64url_append(out, size, &n, header, hl) < 0)
		goto fail;
	out[n++] = '.';
	if (b64url_append(out, size, &n, payload, pl) < 0)
		goto fail;
	if (jws_es256_sign(sign_pkey, out, n, raw) < 0)
		goto fail;
	out[n++] = '.';
	if (b64url_append(out, size, &n, raw, sizeof(raw)) < 0) {
		free(out);
		return NULL;
	}
	return out;

fail:
	free(out);
	return NULL;
}

static EVP_PKEY *es256_private_key(const unsigned char *pem, int len)
{
	BIO *bio = BIO_new_mem_buf(pem, len);
	EVP_PKEY *pk = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
	char curve[64];

	BIO_free(bio);
	if (pk && (!EVP_PKEY_is_a(pk, "EC") ||
		   !EVP_PKEY_get_utf8_string_param(pk, OSSL_PKEY_PARAM_GROUP_NAME, curve,
						   sizeof(curve), NULL) ||
		   strcmp(curve, "prime256v1") != 0)) {
		EVP_PKEY_free(pk);
		pk = NULL;
	}
	return pk;
}

int token_init_signer(void)
{
	const char *var = cfg_str("TH_VAR_DIR", ".");
	char dflt[4096];
	const char *path;
	jwt_t *probe = NULL;
	char *tok;
	int ok;

	if (alg == JWT_ALG_HS256) {
		sign_key = malloc((size_t)verify_key_len + 1);
		if (!sign_key)
			return -1;
		memcpy(sign_key, verify_key, (size_t)verify_key_len + 1);
		sign_key_len = verify_key_len;
		return 0;
	}
	snprintf(dflt, sizeof(dflt), "%s/keys/jwt-es256.pem", var);
	path = cfg_str("TH_JWT_PRIVATE_KEY", dflt);
	sign_key = read_file(path, &sign_key_len);
	if (!sign_key) {
		log_error("token: cannot read the signing key %s", path);
		return -1;
	}
	sign_pkey = es256_private_key(sign_key, sign_key_len);
	if (!sign_pkey) {
		log_error("token: %s is not a usable ES256 (P-256) private key", path);
		return -1;
	}
	/* a signing key that does not match the published public key would
	 * issue tokens nobody accepts: sign one with our signer and let libjwt,
	 * the verifier every component uses, check it now */
	tok = es256_encode("{\"alg\":\"ES256\",\"typ\":\"JWT\"}", "{\"probe\":\"1\"}");
	ok = tok && jwt_decode(&probe, tok, verify_key, verify_key_len) == 0;
	jwt_free(probe);
	free(tok);
	if (!ok) {
		log_error("token: %s does not match the public key", path);
		return -1;
	}
	return 0;
}

void token_close(void)
{
	if (verify_key)
		sodium_memzero(verify_key, (size_t)verify_key_len);
	if (sign_key)
		sodium_memzero(sign_key, (size_t)sign_key_len);
	free(verify_key);
	free(sign_key);
	free(cache);
	EVP_PKEY_free(sign_pkey);
	sign_pkey = NULL;
	EVP_PKEY_free(verify_pkey);
	verify_pkey = NULL;
	verify_key = sign_key = NULL;
	cache = NULL;
	revoke_close();
}

static uint64_t fnv1a(const char *s, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

/* The header must name exactly our algorithm and key before any signature
 * work: this is what keeps "none" and HS256-with-the-public-key out,
 * whatever the library would accept. */
static int header_ok(const char *h, size_t n)
{
	unsigned char bin[512];
	size_t binlen;
	struct json_object *o, *v;
	int ok = 0;

	if (n == 0 || n > 680 ||
	    sodium_base642bin(bin, sizeof(bin), h, n, NULL, &binlen, NULL,
			      sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0)
		return 0;
	o = jh_parse((const char *)bin, binlen);
	if (!o || !json_object_is_type(o, json_type_object))
		goto out;
	if (!json_object_object_get_ex(o, "alg", &v) || !json_object_is_type(v, json_type_string) ||
	    strcmp(json_object_get_string(v), alg_name) != 0)
		goto out;
	if (json_object_object_get_ex(o, "kid", &v) &&
	    (!json_object_is_type(v, json_type_string) ||
	     strcmp(json_object_get_string(v), kid) != 0))
		goto out;
	if (json_object_object_get_ex(o, "crit", &v))
		goto out; /* we understand no critical extension */
	ok = 1;
out:
	json_object_put(o);
	return ok;
}

/* HS256: our own HMAC check with a constant-time compare, so no secret
 * material leaks through the timing of a string compare.  libjwt verifies
 * again afterwards (cheap) before we read its claims. */
static int hs256_ok(const char *signed_part, size_t n, const char *sig, size_t siglen)
{
	unsigned char mac[crypto_auth_hmacsha256_BYTES], given[64];
	size_t givenlen;
	crypto_auth_hmacsha256_state st;

	if (sodium_base642bin(given, sizeof(given), sig, siglen, NULL, &givenlen, NULL,
			      sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
	    givenlen != sizeof(mac))
		return 0;
	crypto_auth_hmacsha256_init(&st, verify_key, (size_t)verify_key_len);
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)signed_part, n);
	crypto_auth_hmacsha256_final(&st, mac);
	return sodium_memcmp(mac, given, sizeof(mac)) == 0;
}

/* ES256: the JWS signature (r || s, 64 bytes, base64url) over the signed
 * part, checked with OpenSSL and the key parsed once.  A non-canonical
 * base64url (stray bits in the last character) is refused by libsodium. */
static int es256_sig_ok(const char *signed_part, size_t n, const char *sig, size_t siglen)
{
	unsigned char raw[JWS_ES256_SIG_LEN];
	size_t rawlen;

	if (!verify_pkey ||
	    sodium_base642bin(raw, sizeof(raw), sig, siglen, NULL, &rawlen, NULL,
			      sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
	    rawlen != sizeof(raw))
		return 0;
	return jws_es256_verify(verify_pkey, signed_part, n, raw);
}

static int parse_id(const char *s, int64_t *out)
{
	long long v;

	if (!s || cfg_parse_int(s, 1, INT64_MAX, &v) < 0)
		return -1;
	*out = v;
	return 0;
}

/* ES256 without libjwt: the signature with the parsed key, then the claims
 * libjwt's path reads (iss, sub, sid, exp, iat), with the same types. */
static enum th_err verify_es256(const char *token, size_t len, const char *dot1, const char *dot2,
				struct token_claims *out)
{
	unsigned char bin[TOKEN_MAX_LEN];
	size_t binlen;
	struct json_object *p = NULL;
	const char *iss;
	int64_t exp, iat;
	enum th_err rc = TH_EUNAUTHORIZED;

	if (!es256_sig_ok(token, (size_t)(dot2 - token), dot2 + 1,
			  len - (size_t)(dot2 + 1 - token)))
		return TH_EUNAUTHORIZED;
	if (sodium_base642bin(bin, sizeof(bin), dot1 + 1, (size_t)(dot2 - dot1 - 1), NULL, &binlen,
			      NULL, sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0)
		return TH_EUNAUTHORIZED;
	p = jh_parse((const char *)bin, binlen);
	if (!p || !json_object_is_type(p, json_type_object))
		goto out;
	iss = jh_member_str(p, "iss");
	if (!iss || strcmp(iss, issuer) != 0)
		goto out;
	if (parse_id(jh_member_str(p, "sub"), &out->user_id) < 0 ||
	    parse_id(jh_member_str(p, "sid"), &out->session_id) < 0)
		goto out;
	if (jh_member_int(p, "exp", &exp) < 0 || exp <= 0)
		goto out;
	out->expires_at = exp;
	out->issued_at = jh_member_int(p, "iat", &iat) < 0 ? 0 : iat;
	rc = TH_OK;
out:
	json_object_put(p);
	return rc;
}

/* Signature and claims, no cache, no revocation. */
static enum th_err verify_signed(const char *token, size_t len, struct token_claims *out)
{
	const char *dot1, *dot2;
	char *copy;
	jwt_t *jwt = NULL;
	const char *iss;
	long exp, iat;
	enum th_err rc = TH_EUNAUTHORIZED;

	if (jws_split(token, len, TOKEN_MAX_LEN, &dot1, &dot2) < 0)
		return TH_EUNAUTHORIZED;
	if (!header_ok(token, (size_t)(dot1 - token)))
		return TH_EUNAUTHORIZED;
	if (alg == JWT_ALG_ES256)
		return verify_es256(token, len, dot1, dot2, out);
	if (alg == JWT_ALG_HS256 &&
	    !hs256_ok(token, (size_t)(dot2 - token), dot2 + 1, len - (size_t)(dot2 + 1 - token)))
		return TH_EUNAUTHORIZED;
	copy = malloc(len + 1);
	if (!copy)
		return TH_EINTERNAL;
	memcpy(copy, token, len);
	copy[len] = '\0';
	if (jwt_decode(&jwt, copy, verify_key, verify_key_len) != 0 || !jwt ||
	    jwt_get_alg(jwt) != alg)
		goto out;
	iss = jwt_get_grant(jwt, "iss");
	if (!iss || strcmp(iss, issuer) != 0)
		goto out;
	if (parse_id(jwt_get_grant(jwt, "sub"), &out->user_id) < 0 ||
	    parse_id(jwt_get_grant(jwt, "sid"), &out->session_id) < 0)
		goto out;
	errno = 0;
	exp = jwt_get_grant_int(jwt, "exp");
	if (errno || exp <= 0)
		goto out;
	iat = jwt_get_grant_int(jwt, "iat");
	out->expires_at = exp;
	out->issued_at = errno ? 0 : iat;
	rc = TH_OK;
out:
	jwt_free(jwt);
	free(copy);
	return rc;
}

static enum th_err check_live(const struct token_claims *c)
{
	int r;

	if ((int64_t)time(NULL) >= c->expires_at)
		return TH_EUNAUTHORIZED;
	r = revoke_check(c->session_id);
	if (r < 0)
		return TH_EUNAVAILABLE;
	return r ? TH_EUNAUTHORIZED : TH_OK;
}

enum th_err token_check_signed(const char *token, size_t len, struct token_claims *out)
{
	enum th_err rc = verify_signed(token, len, out);

	if (rc == TH_OK && (int64_t)time(NULL) >= out->expires_at)
		return TH_EUNAUTHORIZED;
	return rc;
}

enum th_err token_verify_uncached(const char *token, size_t len, struct token_claims *out)
{
	enum th_err rc = verify_signed(token, len, out);

	return rc == TH_OK ? check_live(out) : rc;
}

enum th_err token_verify(const char *token, size_t len, struct token_claims *out)
{
	uint64_t h;
	struct cached *c;
	enum th_err rc;

	if (!cache)
		return TH_EUNAUTHORIZED;
	if (len > TOKEN_CACHE_MAXLEN)
		return token_verify_uncached(token, len, out);
	h = fnv1a(token, len);
	c = &cache[h & (TOKEN_CACHE_SLOTS - 1)];
	if (c->len == len && c->hash == h && memcmp(c->tok, token, len) == 0) {
		*out = c->claims;
		return check_live(out);
	}
	rc = verify_signed(token, len, out);
	if (rc != TH_OK)
		return rc;
	c->hash = h;
	c->len = (uint16_t)len;
	memcpy(c->tok, token, len);
	c->claims = *out;
	return check_live(out);
}

/* ES256 through sign_pkey: the same claims and header as the libjwt path. */
static char *issue_es256(const char *sub, const char *sid, const char *jti, time_t now)
{
	struct json_object *h = json_object_new_object(), *p = json_object_new_object();
	char *tok = NULL;

	if (!h || !p)
		goto out;
	json_object_object_add(h, "alg", json_object_new_string("ES256"));
	json_object_object_add(h, "typ", json_object_new_string("JWT"));
	json_object_object_add(h, "kid", json_object_new_string(kid));
	/* json-c escapes the configured issuer; the rest are digits and hex */
	json_object_object_add(p, "iss", json_object_new_string(issuer));
	json_object_object_add(p, "sub", json_object_new_string(sub));
	json_object_object_add(p, "sid", json_object_new_string(sid));
	json_object_object_add(p, "jti", json_object_new_string(jti));
	json_object_object_add(p, "iat", json_object_new_int64((int64_t)now));
	json_object_object_add(p, "exp", json_object_new_int64((int64_t)now + ttl_s));
	tok = es256_encode(json_object_to_json_string_ext(h, JSON_C_TO_STRING_PLAIN),
			   json_object_to_json_string_ext(p, JSON_C_TO_STRING_PLAIN));
out:
	json_object_put(h);
	json_object_put(p);
	return tok;
}

char *token_issue(struct arena *a, int64_t user_id, int64_t session_id)
{
	jwt_t *jwt = NULL;
	char sub[24], sid[24], jti[33], *tok = NULL, *out = NULL;
	unsigned char rnd[16];
	time_t now = time(NULL);

	if (!sign_key)
		return NULL;
	snprintf(sub, sizeof(sub), "%lld", (long long)user_id);
	snprintf(sid, sizeof(sid), "%lld", (long long)session_id);
	randombytes_buf(rnd, sizeof(rnd));
	sodium_bin2hex(jti, sizeof(jti), rnd, sizeof(rnd));
	if (sign_pkey) {
		tok = issue_es256(sub, sid, jti, now);
		if (!tok)
			log_error("token: signing failed");
		goto out;
	}
	if (jwt_new(&jwt) != 0)
		return NULL;
	if (jwt_set_alg(jwt, alg, sign_key, sign_key_len) != 0 ||
	    jwt_add_header(jwt, "kid", kid) != 0 || jwt_add_grant(jwt, "iss", issuer) != 0 ||
	    jwt_add_grant(jwt, "sub", sub) != 0 || jwt_add_grant(jwt, "sid", sid) != 0 ||
	    jwt_add_grant(jwt, "jti", jti) != 0 || jwt_add_grant_int(jwt, "iat", (long)now) != 0 ||
	    jwt_add_grant_int(jwt, "exp", (long)(now + ttl_s)) != 0) {
		log_error("token: cannot build a token");
		goto out;
	}
	tok = jwt_encode_str(jwt);
	if (!tok)
		log_error("token: signing failed");
out:
	if (tok)
		out = arena_strdup(a, tok);
	free(tok);
	jwt_free(jwt);
	return out;
}

struct json_object *token_jwks(void)
{
	struct json_object *o = json_object_new_object(), *keys = json_object_new_array();

	if (alg == JWT_ALG_ES256) {
		struct json_object *k = json_object_new_object();

		json_object_object_add(k, "kty", json_object_new_string("EC"));
		json_object_object_add(k, "crv", json_object_new_string("P-256"));
		json_object_object_add(k, "x", json_object_new_string(jwk_x));
		json_object_object_add(k, "y", json_object_new_string(jwk_y));
		json_object_object_add(k, "kid", json_object_new_string(kid));
		json_object_object_add(k, "use", json_object_new_string("sig"));
		json_object_object_add(k, "alg", json_object_new_string("ES256"));
		json_object_array_add(keys, k);
	}
	json_object_object_add(o, "keys", keys);
	return o;
}
