/* fuzz_token: access token parsing (lib/token), HS256 with a key made at
 * start, through token_check_signed(): everything token_verify() does but
 * the revocation lookup (Redis) and the cache.  fuzz_token_es256 is this
 * harness with FUZZ_TOKEN_ES256 defined: a P-256 key made at start, the
 * OpenSSL signature check and the claims reading of the ES256 path.
 *
 * Input: a mode byte, then
 *   - even: the raw token;
 *   - odd: a header JSON, NUL, a claims JSON: the target encodes and signs
 *     them with the key, so the fuzzer reaches the header checks and
 *     libjwt's claim parsing behind the signature.
 * Checks: a raw token never passes unless it is the one issued at start
 * (forging is out of reach); an accepted token has alg HS256, our issuer,
 * sub and sid positive, and has not expired. */
#include <json-c/json.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fuzz.h"
#include "token.h"

#ifdef FUZZ_TOKEN_ES256
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

static EVP_PKEY *es_key; /* the private key the target signs with */

/* A P-256 key pair in dir: the PEM files the token module reads. */
static void es256_keys(const char *dir)
{
	char path[96];
	FILE *fp;

	es_key = EVP_EC_gen("P-256");
	FZ_CHECK(es_key);
	snprintf(path, sizeof(path), "%s/priv.pem", dir);
	fp = fopen(path, "w");
	FZ_CHECK(fp && PEM_write_PrivateKey(fp, es_key, NULL, NULL, 0, NULL, NULL) == 1);
	fclose(fp);
	setenv("TH_JWT_PRIVATE_KEY", path, 1);
	snprintf(path, sizeof(path), "%s/pub.pem", dir);
	fp = fopen(path, "w");
	FZ_CHECK(fp && PEM_write_PUBKEY(fp, es_key) == 1);
	fclose(fp);
	setenv("TH_JWT_PUBLIC_KEY", path, 1);
	setenv("TH_JWT_ALG", "ES256", 1);
}

/* The JWS signature of the n bytes at msg: r || s, 64 bytes. */
static void es256_sign(const char *msg, size_t n, unsigned char raw[64])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char der[80];
	const unsigned char *p = der;
	size_t derlen = sizeof(der);
	ECDSA_SIG *sig;

	FZ_CHECK(md && EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, es_key) == 1 &&
		 EVP_DigestSign(md, der, &derlen, (const unsigned char *)msg, n) == 1);
	sig = d2i_ECDSA_SIG(NULL, &p, (long)derlen);
	FZ_CHECK(sig && BN_bn2binpad(ECDSA_SIG_get0_r(sig), raw, 32) == 32 &&
		 BN_bn2binpad(ECDSA_SIG_get0_s(sig), raw + 32, 32) == 32);
	ECDSA_SIG_free(sig);
	EVP_MD_CTX_free(md);
}
#endif

static char secret[65];
static char *issued;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char dir[] = "/tmp/th-fuzz-token.XXXXXX", path[64];
	unsigned char rnd[32];
	struct token_claims c;
	struct arena a;
	FILE *fp;

	(void)argc;
	(void)argv;
	fz_quiet();
	FZ_CHECK(sodium_init() >= 0);
	randombytes_buf(rnd, sizeof(rnd));
	sodium_bin2hex(secret, sizeof(secret), rnd, sizeof(rnd));
	FZ_CHECK(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/secret", dir);
	fp = fopen(path, "w");
	FZ_CHECK(fp);
	fprintf(fp, "%s\n", secret);
	fclose(fp);
	setenv("TH_JWT_ALG", "HS256", 1);
	setenv("TH_JWT_SECRET_FILE", path, 1);
#ifdef FUZZ_TOKEN_ES256
	es256_keys(dir);
#endif
	setenv("TH_JWT_ISSUER", "townhall", 1);
	unsetenv("TH_VAR_DIR"); /* no revocation sequence file */
	FZ_CHECK(token_init() == 0);
	FZ_CHECK(token_init_signer() == 0);
	unlink(path);
#ifdef FUZZ_TOKEN_ES256
	snprintf(path, sizeof(path), "%s/priv.pem", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/pub.pem", dir);
	unlink(path);
#endif
	rmdir(dir);
	/* the signer and the verifier agree */
	arena_init(&a);
	issued = strdup(token_issue(&a, 42, 7));
	arena_free(&a);
	FZ_CHECK(issued);
	FZ_CHECK(token_check_signed(issued, strlen(issued), &c) == TH_OK);
	FZ_CHECK(c.user_id == 42 && c.session_id == 7);
	return 0;
}

static size_t b64(char *out, size_t size, const void *bin, size_t n)
{
	sodium_bin2base64(out, size, bin, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	return strlen(out);
}

/* header.claims.signature (HMAC-SHA256, or ES256), malloc'd. */
static char *sign(const char *header, size_t hl, const char *claims, size_t cl, size_t *len)
{
	size_t size = sodium_base64_ENCODED_LEN(hl, sodium_base64_VARIANT_URLSAFE_NO_PADDING) +
		      sodium_base64_ENCODED_LEN(cl, sodium_base64_VARIANT_URLSAFE_NO_PADDING) + 128;
	char *out = malloc(size);
	unsigned char mac[crypto_auth_hmacsha256_BYTES];
	crypto_auth_hmacsha256_state st;
	size_t n;

	FZ_CHECK(out);
	n = b64(out, size, header, hl);
	out[n++] = '.';
	n += b64(out + n, size - n, claims, cl);
#ifdef FUZZ_TOKEN_ES256
	{
		unsigned char raw[64];

		(void)st;
		(void)mac;
		es256_sign(out, n, raw);
		out[n++] = '.';
		n += b64(out + n, size - n, raw, sizeof(raw));
	}
#else
	crypto_auth_hmacsha256_init(&st, (const unsigned char *)secret, strlen(secret));
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)out, n);
	crypto_auth_hmacsha256_final(&st, mac);
	out[n++] = '.';
	n += b64(out + n, size - n, mac, sizeof(mac));
#endif
	*len = n;
	return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz f = {data, size};
	unsigned mode = fz_byte(&f);
	struct token_claims c;
	enum th_err rc;
	char *tok;
	size_t len;

	if (mode & 1) {
		size_t hl, cl;
		char *h = fz_str(&f, &hl), *cb = fz_rest(&f, &cl);

		tok = sign(h, hl, cb, cl, &len);
		free(h);
		free(cb);
	} else {
		tok = fz_rest(&f, &len);
	}
	memset(&c, 0, sizeof(c));
	rc = token_check_signed(tok, len, &c);
	FZ_CHECK(rc == TH_OK || rc == TH_EUNAUTHORIZED);
	if (rc == TH_OK) {
		FZ_CHECK((mode & 1) || (len == strlen(issued) && memcmp(tok, issued, len) == 0));
		FZ_CHECK(c.user_id > 0 && c.session_id > 0);
		FZ_CHECK(c.expires_at > (int64_t)time(NULL));
	}
	free(tok);
	return 0;
}
