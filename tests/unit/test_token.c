/* Unit tests for lib/token: what a token proves by itself (signature,
 * header, claims, expiry).  Revocation needs Redis/PostgreSQL and is covered
 * by tests/integration/auth.test.mjs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <json-c/json.h>
#include <jwt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "token.h"

static char dir[64];
static char path_priv[128], path_pub[128], path_other[128];

static unsigned char *slurp(const char *path, int *len)
{
	static unsigned char buf[8192];
	FILE *f = fopen(path, "rb");
	size_t n;

	assert_non_null(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	*len = (int)n;
	return buf;
}

static int run(const char *cmd)
{
	return system(cmd);
}

static int setup(void **state)
{
	char cmd[1024];

	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/th-token-test.%d", (int)getpid());
	mkdir(dir, 0700);
	snprintf(path_priv, sizeof(path_priv), "%s/priv.pem", dir);
	snprintf(path_pub, sizeof(path_pub), "%s/pub.pem", dir);
	snprintf(path_other, sizeof(path_other), "%s/other.pem", dir);
	snprintf(cmd, sizeof(cmd),
		 "openssl ecparam -name prime256v1 -genkey -noout 2>/dev/null | openssl pkey -out "
		 "%s && "
		 "openssl pkey -in %s -pubout -out %s && "
		 "openssl ecparam -name prime256v1 -genkey -noout 2>/dev/null | openssl pkey -out "
		 "%s",
		 path_priv, path_priv, path_pub, path_other);
	if (run(cmd) != 0)
		return -1;
	setenv("TH_JWT_ALG", "ES256", 1);
	setenv("TH_JWT_PUBLIC_KEY", path_pub, 1);
	setenv("TH_JWT_PRIVATE_KEY", path_priv, 1);
	setenv("TH_JWT_ISSUER", "townhall-test", 1);
	setenv("TH_ACCESS_TTL", "60", 1);
	unsetenv("TH_VAR_DIR");
	if (token_init() < 0 || token_init_signer() < 0)
		return -1;
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	token_close();
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return run(cmd) == 0 ? 0 : -1;
}

/* A token with the given key file, algorithm and claims. */
static char *forge(const char *keypath, jwt_alg_t alg, const char *kid, const char *iss,
		   const char *sub, long exp)
{
	jwt_t *jwt = NULL;
	unsigned char *key;
	int len;
	char *tok;

	key = slurp(keypath, &len);
	assert_int_equal(jwt_new(&jwt), 0);
	assert_int_equal(jwt_set_alg(jwt, alg, alg == JWT_ALG_NONE ? NULL : key,
				     alg == JWT_ALG_NONE ? 0 : len),
			 0);
	if (kid)
		jwt_add_header(jwt, "kid", kid);
	jwt_add_grant(jwt, "iss", iss);
	jwt_add_grant(jwt, "sub", sub);
	jwt_add_grant(jwt, "sid", "9");
	jwt_add_grant_int(jwt, "iat", (long)time(NULL));
	jwt_add_grant_int(jwt, "exp", exp);
	tok = jwt_encode_str(jwt);
	jwt_free(jwt);
	assert_non_null(tok);
	return tok;
}

static enum th_err check(const char *tok)
{
	struct token_claims c;

	return token_check_signed(tok, strlen(tok), &c);
}

static void test_issue_roundtrip(void **state)
{
	struct arena a;
	struct token_claims c;
	char *tok;

	(void)state;
	arena_init(&a);
	tok = token_issue(&a, 42, 7);
	assert_non_null(tok);
	assert_int_equal(token_check_signed(tok, strlen(tok), &c), TH_OK);
	assert_int_equal(c.user_id, 42);
	assert_int_equal(c.session_id, 7);
	assert_true(c.expires_at - c.issued_at == 60);
	assert_int_equal(strlen(token_kid()), 16);
	arena_free(&a);
}

static void test_tampered(void **state)
{
	struct arena a;
	char *tok, *dot, orig;
	size_t i;

	(void)state;
	arena_init(&a);
	tok = token_issue(&a, 42, 7);
	/* flip one character in the payload */
	dot = strchr(tok, '.');
	i = (size_t)(dot - tok) + 5;
	orig = tok[i];
	tok[i] = orig == 'A' ? 'B' : 'A';
	assert_int_equal(check(tok), TH_EUNAUTHORIZED);
	tok[i] = orig;
	assert_int_equal(check(tok), TH_OK);
	/* and one in the signature */
	i = strlen(tok) - 3;
	tok[i] = tok[i] == 'A' ? 'B' : 'A';
	assert_int_equal(check(tok), TH_EUNAUTHORIZED);
	arena_free(&a);
}

static void test_alg_none(void **state)
{
	char *tok = forge(path_priv, JWT_ALG_NONE, token_kid(), "townhall-test", "42",
			  (long)time(NULL) + 60);

	(void)state;
	assert_int_equal(check(tok), TH_EUNAUTHORIZED);
	free(tok);
}

static void test_other_key(void **state)
{
	char *tok = forge(path_other, JWT_ALG_ES256, token_kid(), "townhall-test", "42",
			  (long)time(NULL) + 60);

	(void)state;
	assert_int_equal(check(tok), TH_EUNAUTHORIZED);
	free(tok);
}

static void test_hs256_with_public_key(void **state)
{
	/* the classic confusion: HMAC keyed with the (public) verification key */
	char *tok = forge(path_pub, JWT_ALG_HS256, token_kid(), "townhall-test", "42",
			  (long)time(NULL) + 60);

	(void)state;
	assert_int_equal(check(tok), TH_EUNAUTHORIZED);
	free(tok);
}

static void test_claims(void **state)
{
	long now = (long)time(NULL);
	char *ok = forge(path_priv, JWT_ALG_ES256, token_kid(), "townhall-test", "42", now + 60);
	char *nokid = forge(path_priv, JWT_ALG_ES256, NULL, "townhall-test", "42", now + 60);
	char *badkid = forge(path_priv, JWT_ALG_ES256, "0000000000000000", "townhall-test", "42",
			     now + 60);
	char *expired = forge(path_priv, JWT_ALG_ES256, token_kid(), "townhall-test", "42",
			      now - 1);
	char *iss = forge(path_priv, JWT_ALG_ES256, token_kid(), "someone-else", "42", now + 60);
	char *sub = forge(path_priv, JWT_ALG_ES256, token_kid(), "townhall-test", "42x", now + 60);

	(void)state;
	assert_int_equal(check(ok), TH_OK);
	assert_int_equal(check(nokid), TH_OK); /* kid is optional; when given it must match */
	assert_int_equal(check(badkid), TH_EUNAUTHORIZED);
	assert_int_equal(check(expired), TH_EUNAUTHORIZED);
	assert_int_equal(check(iss), TH_EUNAUTHORIZED);
	assert_int_equal(check(sub), TH_EUNAUTHORIZED);
	free(ok);
	free(nokid);
	free(badkid);
	free(expired);
	free(iss);
	free(sub);
}

static void test_garbage(void **state)
{
	static char longtok[TOKEN_MAX_LEN + 10];
	struct token_claims c;

	(void)state;
	assert_int_equal(check(""), TH_EUNAUTHORIZED);
	assert_int_equal(check("abc"), TH_EUNAUTHORIZED);
	assert_int_equal(check("a.b"), TH_EUNAUTHORIZED);
	assert_int_equal(check("a.b.c"), TH_EUNAUTHORIZED);
	assert_int_equal(check("..."), TH_EUNAUTHORIZED);
	assert_int_equal(check("eyJhbGciOiJFUzI1NiJ9.e30."), TH_EUNAUTHORIZED);
	assert_int_equal(check("e30=.e30.e30"), TH_EUNAUTHORIZED);
	assert_int_equal(token_check_signed("e30.e\0.e30", 10, &c), TH_EUNAUTHORIZED);
	memset(longtok, 'a', sizeof(longtok) - 1);
	longtok[100] = '.';
	longtok[200] = '.';
	assert_int_equal(check(longtok), TH_EUNAUTHORIZED);
}

static void test_jwks(void **state)
{
	struct json_object *o = token_jwks(), *keys, *k, *v;

	(void)state;
	assert_true(json_object_object_get_ex(o, "keys", &keys));
	assert_int_equal(json_object_array_length(keys), 1);
	k = json_object_array_get_idx(keys, 0);
	assert_true(json_object_object_get_ex(k, "kid", &v));
	assert_string_equal(json_object_get_string(v), token_kid());
	assert_true(json_object_object_get_ex(k, "x", &v));
	assert_int_equal(json_object_get_string_len(v), 43);
	assert_true(json_object_object_get_ex(k, "crv", &v));
	assert_string_equal(json_object_get_string(v), "P-256");
	json_object_put(o);
}

static void test_hs256(void **state)
{
	char secret[128], other[128];
	struct arena a;
	char *tok, *es, *forged;
	FILE *f;

	(void)state;
	snprintf(secret, sizeof(secret), "%s/hs.secret", dir);
	snprintf(other, sizeof(other), "%s/other.secret", dir);
	f = fopen(secret, "w");
	assert_non_null(f);
	fputs("0123456789abcdef0123456789abcdef-townhall\n", f);
	fclose(f);
	f = fopen(other, "w");
	assert_non_null(f);
	fputs("fedcba9876543210fedcba9876543210-elsewhere\n", f);
	fclose(f);
	arena_init(&a);
	es = token_issue(&a, 5, 6); /* an ES256 token, before switching */
	token_close();
	setenv("TH_JWT_ALG", "HS256", 1);
	setenv("TH_JWT_SECRET_FILE", secret, 1);
	assert_int_equal(token_init(), 0);
	assert_int_equal(token_init_signer(), 0);
	tok = token_issue(&a, 5, 6);
	assert_non_null(tok);
	assert_int_equal(check(tok), TH_OK);
	assert_int_equal(check(es), TH_EUNAUTHORIZED); /* another algorithm */
	tok[strlen(tok) - 2] = tok[strlen(tok) - 2] == 'A' ? 'B' : 'A';
	assert_int_equal(check(tok), TH_EUNAUTHORIZED);
	/* the right claims and kid, signed with another secret (newline and all,
	 * as forge() reads the file whole) */
	forged = forge(other, JWT_ALG_HS256, token_kid(), "townhall-test", "5",
		       (long)time(NULL) + 60);
	assert_int_equal(check(forged), TH_EUNAUTHORIZED);
	free(forged);
	{
		struct json_object *jwks = token_jwks();

		assert_int_equal(json_object_array_length(json_object_object_get(jwks, "keys")), 0);
		json_object_put(jwks);
	}
	arena_free(&a);
	/* back to ES256 for teardown and any later test */
	token_close();
	setenv("TH_JWT_ALG", "ES256", 1);
	assert_int_equal(token_init(), 0);
	assert_int_equal(token_init_signer(), 0);
}

/* The ES256 signer (a key parsed once, OpenSSL directly): its tokens are
 * what libjwt expects, a configured issuer is JSON-escaped, and a private
 * key that is not P-256 or not the published key's stops start-up. */
static void test_es256_signer(void **state)
{
	char p384[160], cmd[512], *tok, *dot1, *dot2;
	unsigned char *pub;
	struct arena a;
	jwt_t *jwt = NULL;
	int len;

	(void)state;
	arena_init(&a);
	token_close();
	setenv("TH_JWT_ISSUER", "town\"hall\\x", 1);
	assert_int_equal(token_init(), 0);
	assert_int_equal(token_init_signer(), 0);
	tok = token_issue(&a, 11, 12);
	assert_non_null(tok);
	assert_int_equal(check(tok), TH_OK);
	/* libjwt, the verifier of every component, reads the same claims */
	pub = slurp(path_pub, &len);
	assert_int_equal(jwt_decode(&jwt, tok, pub, len), 0);
	assert_string_equal(jwt_get_grant(jwt, "iss"), "town\"hall\\x");
	assert_string_equal(jwt_get_grant(jwt, "sub"), "11");
	assert_string_equal(jwt_get_grant(jwt, "sid"), "12");
	assert_string_equal(jwt_get_header(jwt, "typ"), "JWT");
	assert_string_equal(jwt_get_header(jwt, "kid"), token_kid());
	jwt_free(jwt); /* pub: slurp's static buffer */
	/* JWS ES256: the signature is the raw 64-byte r||s, 86 base64url chars */
	dot1 = strchr(tok, '.');
	assert_non_null(dot1);
	dot2 = strchr(dot1 + 1, '.');
	assert_non_null(dot2);
	assert_int_equal(strlen(dot2 + 1), 86);
	token_close();
	setenv("TH_JWT_ISSUER", "townhall-test", 1);

	/* a private key that does not match the public key */
	setenv("TH_JWT_PRIVATE_KEY", path_other, 1);
	assert_int_equal(token_init(), 0);
	assert_int_equal(token_init_signer(), -1);
	token_close();
	/* a P-384 key */
	snprintf(p384, sizeof(p384), "%s/p384.pem", dir);
	snprintf(cmd, sizeof(cmd),
		 "openssl ecparam -name secp384r1 -genkey -noout 2>/dev/null | openssl pkey -out "
		 "%s",
		 p384);
	assert_int_equal(run(cmd), 0);
	setenv("TH_JWT_PRIVATE_KEY", p384, 1);
	assert_int_equal(token_init(), 0);
	assert_int_equal(token_init_signer(), -1);
	token_close();

	setenv("TH_JWT_PRIVATE_KEY", path_priv, 1);
	assert_int_equal(token_init(), 0);
	assert_int_equal(token_init_signer(), 0);
	arena_free(&a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_issue_roundtrip),
		cmocka_unit_test(test_tampered),
		cmocka_unit_test(test_alg_none),
		cmocka_unit_test(test_other_key),
		cmocka_unit_test(test_hs256_with_public_key),
		cmocka_unit_test(test_claims),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_jwks),
		cmocka_unit_test(test_hs256),
		cmocka_unit_test(test_es256_signer),
	};

	return cmocka_run_group_tests_name("token", tests, setup, teardown);
}
