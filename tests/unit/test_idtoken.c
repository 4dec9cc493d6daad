/* Unit tests for lib/idtoken: JWKS parsing and the ID token checks, with
 * keys made here (OpenSSL) and tokens signed here (ES256 through lib/jws,
 * RS256 through EVP).  The end-to-end flow against a real provider is
 * tests/integration/oidc.test.mjs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <json-c/json.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "idtoken.h"
#include "jws.h"

static EVP_PKEY *ec_a, *ec_b, *rsa_a;
static char jwks[8192];

static void b64u(char *out, size_t size, const void *bin, size_t n)
{
	sodium_bin2base64(out, size, bin, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

static void bn_b64u(EVP_PKEY *k, const char *param, char *out, size_t size, int pad)
{
	BIGNUM *bn = NULL;
	unsigned char bin[1024];
	int n;

	assert_int_equal(EVP_PKEY_get_bn_param(k, param, &bn), 1);
	n = pad ? BN_bn2binpad(bn, bin, pad) : BN_bn2bin(bn, bin);
	assert_true(n > 0);
	b64u(out, size, bin, (size_t)n);
	BN_free(bn);
}

static int setup(void **state)
{
	char x[64], y[64], n[700], e[16];

	(void)state;
	if (sodium_init() < 0)
		return -1;
	ec_a = EVP_EC_gen("P-256");
	ec_b = EVP_EC_gen("P-256");
	rsa_a = EVP_RSA_gen(2048);
	if (!ec_a || !ec_b || !rsa_a)
		return -1;
	bn_b64u(ec_a, OSSL_PKEY_PARAM_EC_PUB_X, x, sizeof(x), 32);
	bn_b64u(ec_a, OSSL_PKEY_PARAM_EC_PUB_Y, y, sizeof(y), 32);
	bn_b64u(rsa_a, OSSL_PKEY_PARAM_RSA_N, n, sizeof(n), 0);
	bn_b64u(rsa_a, OSSL_PKEY_PARAM_RSA_E, e, sizeof(e), 0);
	/* an encryption key and an unknown type are skipped */
	snprintf(jwks, sizeof(jwks),
		 "{\"keys\":[{\"kty\":\"EC\",\"use\":\"enc\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":"
		 "\"%s\",\"kid\":\"enc\"},{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"AA\"},"
		 "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\",\"kid\":\"ec1\","
		 "\"alg\":\"ES256\",\"use\":\"sig\"},{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"%s\","
		 "\"kid\":\"rsa1\"}]}",
		 x, y, x, y, n, e);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	EVP_PKEY_free(ec_a);
	EVP_PKEY_free(ec_b);
	EVP_PKEY_free(rsa_a);
	return 0;
}

/* header.payload.signature of two JSON texts with key; alg "ES256" or
 * "RS256" (anything else: the ES256 signature under that name). */
static char *sign(const char *header, const char *payload, EVP_PKEY *key, int rsa)
{
	static char tok[8192];
	size_t n;
	unsigned char sig[512];
	size_t siglen = sizeof(sig);

	b64u(tok, sizeof(tok), header, strlen(header));
	n = strlen(tok);
	tok[n++] = '.';
	b64u(tok + n, sizeof(tok) - n, payload, strlen(payload));
	n += strlen(tok + n);
	if (rsa) {
		EVP_MD_CTX *md = EVP_MD_CTX_new();

		assert_int_equal(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key), 1);
		assert_int_equal(EVP_DigestSign(md, sig, &siglen, (unsigned char *)tok, n), 1);
		EVP_MD_CTX_free(md);
	} else {
		assert_int_equal(jws_es256_sign(key, tok, n, sig), 0);
		siglen = JWS_ES256_SIG_LEN;
	}
	tok[n++] = '.';
	b64u(tok + n, sizeof(tok) - n, sig, siglen);
	return tok;
}

static struct idt_expect expect(void)
{
	struct idt_expect e = {.issuer = "https://idp.example",
			       .client_id = "client-1",
			       .nonce = "n-123",
			       .now = (int64_t)time(NULL),
			       .leeway_s = 60};
	return e;
}

/* the claims of a good token with `extra` members replacing them */
static const char *claims(const char *extra)
{
	static char buf[1024];
	long now = (long)time(NULL);

	snprintf(buf, sizeof(buf),
		 "{\"iss\":\"https://idp.example\",\"aud\":\"client-1\",\"sub\":\"s-1\","
		 "\"nonce\":\"n-123\",\"iat\":%ld,\"exp\":%ld,\"email\":\"a@example.test\","
		 "\"email_verified\":true%s%s}",
		 now, now + 300, extra ? "," : "", extra ? extra : "");
	return buf;
}

static enum idt_result check(const char *tok, const struct idt_keys *keys)
{
	struct idt_expect e = expect();
	struct json_object *c = NULL;
	enum idt_result r = idt_verify(tok, strlen(tok), keys, &e, &c);

	if (r == IDT_OK) {
		assert_non_null(c);
		assert_string_equal(idt_claim_str(c, "sub"), "s-1");
		assert_true(idt_claim_true(c, "email_verified"));
	} else {
		assert_null(c);
	}
	json_object_put(c);
	return r;
}

static void test_jwks(void **state)
{
	struct idt_keys k = {0};

	(void)state;
	assert_int_equal(idt_keys_parse(jwks, strlen(jwks), &k), 0);
	assert_int_equal(k.n, 2);
	assert_string_equal(k.keys[0].kid, "ec1");
	assert_int_equal(k.keys[0].alg, IDT_ES256);
	assert_string_equal(k.keys[1].kid, "rsa1");
	assert_int_equal(k.keys[1].alg, IDT_RS256);
	idt_keys_clear(&k);
	assert_int_equal(idt_keys_parse("[]", 2, &k), -1);
	assert_int_equal(idt_keys_parse("{\"keys\":{}}", 11, &k), -1);
	assert_int_equal(idt_keys_parse("{\"keys\":[1,\"x\",{}]}", 19, &k), 0);
	assert_int_equal(k.n, 0);
	/* a point off the curve is no key */
	assert_int_equal(idt_keys_parse("{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":"
					"\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\",\"y\":"
					"\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE\"}]}",
					strlen("{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":"
					       "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\","
					       "\"y\":"
					       "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE\"}]"
					       "}"),
					&k),
			 0);
	assert_int_equal(k.n, 0);
	idt_keys_clear(&k);
}

static void test_good(void **state)
{
	struct idt_keys k = {0};

	(void)state;
	assert_int_equal(idt_keys_parse(jwks, strlen(jwks), &k), 0);
	assert_int_equal(check(sign("{\"alg\":\"ES256\",\"kid\":\"ec1\"}", claims(NULL), ec_a, 0),
			       &k),
			 IDT_OK);
	assert_int_equal(check(sign("{\"alg\":\"RS256\",\"kid\":\"rsa1\"}", claims(NULL), rsa_a, 1),
			       &k),
			 IDT_OK);
	/* no kid: the only key of the algorithm */
	assert_int_equal(check(sign("{\"alg\":\"RS256\"}", claims(NULL), rsa_a, 1), &k), IDT_OK);
	/* several audiences with azp naming us */
	assert_int_equal(check(sign("{\"alg\":\"ES256\",\"kid\":\"ec1\"}",
				    claims("\"aud\":[\"client-1\",\"api\"],\"azp\":\"client-1\""),
				    ec_a, 0),
			       &k),
			 IDT_OK);
	idt_keys_clear(&k);
}

static void test_keys_refused(void **state)
{
	struct idt_keys k = {0};
	char *tok;

	(void)state;
	assert_int_equal(idt_keys_parse(jwks, strlen(jwks), &k), 0);
	/* another key under our kid; an unknown kid; the RSA key's kid for ES256 */
	assert_int_equal(check(sign("{\"alg\":\"ES256\",\"kid\":\"ec1\"}", claims(NULL), ec_b, 0),
			       &k),
			 IDT_BAD_SIGNATURE);
	assert_int_equal(check(sign("{\"alg\":\"ES256\",\"kid\":\"ec9\"}", claims(NULL), ec_b, 0),
			       &k),
			 IDT_UNKNOWN_KID);
	assert_int_equal(check(sign("{\"alg\":\"ES256\",\"kid\":\"rsa1\"}", claims(NULL), ec_a, 0),
			       &k),
			 IDT_UNKNOWN_KID);
	/* algorithms we never accept, a critical extension */
	assert_int_equal(check(sign("{\"alg\":\"none\"}", claims(NULL), ec_a, 0), &k),
			 IDT_MALFORMED);
	assert_int_equal(check(sign("{\"alg\":\"HS256\",\"kid\":\"ec1\"}", claims(NULL), ec_a, 0),
			       &k),
			 IDT_MALFORMED);
	assert_int_equal(check(sign("{\"alg\":\"ES256\",\"kid\":\"ec1\",\"crit\":[\"x\"]}",
				    claims(NULL), ec_a, 0),
			       &k),
			 IDT_MALFORMED);
	/* a changed payload */
	tok = sign("{\"alg\":\"ES256\",\"kid\":\"ec1\"}", claims(NULL), ec_a, 0);
	tok[strchr(tok, '.') - tok + 5] ^= 1;
	assert_int_equal(check(tok, &k), IDT_BAD_SIGNATURE);
	/* shapes */
	assert_int_equal(check("", &k), IDT_MALFORMED);
	assert_int_equal(check("a.b", &k), IDT_MALFORMED);
	assert_int_equal(check("a.b.c.d", &k), IDT_MALFORMED);
	assert_int_equal(check("!!.b.c", &k), IDT_MALFORMED);
	idt_keys_clear(&k);
}

static void test_claims_refused(void **state)
{
	struct idt_keys k = {0};
	long now = (long)time(NULL);
	char extra[128];
	static const struct {
		const char *extra;
		enum idt_result want;
	} cases[] = {
		{"\"iss\":\"https://evil.example\"", IDT_BAD_ISSUER},
		{"\"aud\":\"client-2\"", IDT_BAD_AUDIENCE},
		{"\"aud\":[\"client-1\",\"api\"]", IDT_BAD_AUDIENCE}, /* no azp */
		{"\"azp\":\"client-2\"", IDT_BAD_AUDIENCE},
		{"\"nonce\":\"n-124\"", IDT_BAD_NONCE},
		{"\"sub\":\"\"", IDT_NO_SUBJECT},
		{"\"exp\":\"soon\"", IDT_BAD_TIME},
	};

	(void)state;
	assert_int_equal(idt_keys_parse(jwks, strlen(jwks), &k), 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_int_equal(check(sign("{\"alg\":\"ES256\",\"kid\":\"ec1\"}",
					    claims(cases[i].extra), ec_a, 0),
				       &k),
				 cases[i].want);
	/* expired beyond the leeway; within it; issued in the future */
	snprintf(extra, sizeof(extra), "\"exp\":%ld", now - 61);
	assert_int_equal(check(sign("{\"alg\":\"ES256\",\"kid\":\"ec1\"}", claims(extra), ec_a, 0),
			       &k),
			 IDT_BAD_TIME);
	snprintf(extra, sizeof(extra), "\"exp\":%ld", now - 30);
	assert_int_equal(check(sign("{\"alg\":\"ES256\",\"kid\":\"ec1\"}", claims(extra), ec_a, 0),
			       &k),
			 IDT_OK);
	snprintf(extra, sizeof(extra), "\"iat\":%ld", now + 600);
	assert_int_equal(check(sign("{\"alg\":\"ES256\",\"kid\":\"ec1\"}", claims(extra), ec_a, 0),
			       &k),
			 IDT_BAD_TIME);
	idt_keys_clear(&k);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_jwks),
		cmocka_unit_test(test_good),
		cmocka_unit_test(test_keys_refused),
		cmocka_unit_test(test_claims_refused),
	};

	return cmocka_run_group_tests_name("idtoken", tests, setup, teardown);
}
