/* jws: ES256 and RS256 with OpenSSL; ES256's raw r||s to and from DER. */
#include "jws.h"

#include <openssl/ec.h>
#include <string.h>

int jws_es256_sign(EVP_PKEY *key, const void *input, size_t n, unsigned char raw[JWS_ES256_SIG_LEN])
{
	unsigned char der[80]; /* an ECDSA P-256 DER signature is at most 72 bytes */
	const unsigned char *p = der;
	size_t der_len = sizeof(der);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	ECDSA_SIG *sig = NULL;
	const BIGNUM *r, *s;
	int rc = -1;

	if (!md || EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) != 1 ||
	    EVP_DigestSign(md, der, &der_len, input, n) != 1)
		goto out;
	sig = d2i_ECDSA_SIG(NULL, &p, (long)der_len);
	if (!sig)
		goto out;
	ECDSA_SIG_get0(sig, &r, &s);
	if (BN_bn2binpad(r, raw, 32) == 32 && BN_bn2binpad(s, raw + 32, 32) == 32)
		rc = 0;
out:
	ECDSA_SIG_free(sig);
	EVP_MD_CTX_free(md);
	return rc;
}

int jws_es256_verify(EVP_PKEY *key, const void *input, size_t n,
		     const unsigned char raw[JWS_ES256_SIG_LEN])
{
	unsigned char *der = NULL;
	BIGNUM *r = BN_bin2bn(raw, 32, NULL), *s = BN_bin2bn(raw + 32, 32, NULL);
	ECDSA_SIG *es = ECDSA_SIG_new();
	EVP_MD_CTX *md = NULL;
	int derlen, ok = 0;

	if (!key || !r || !s || !es || ECDSA_SIG_set0(es, r, s) != 1)
		goto out;
	r = s = NULL; /* es owns them now */
	derlen = i2d_ECDSA_SIG(es, &der);
	md = EVP_MD_CTX_new();
	ok = derlen > 0 && md && EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key) == 1 &&
	     EVP_DigestVerify(md, der, (size_t)derlen, input, n) == 1;
out:
	EVP_MD_CTX_free(md);
	OPENSSL_free(der);
	ECDSA_SIG_free(es);
	BN_free(r);
	BN_free(s);
	return ok;
}

int jws_rs256_verify(EVP_PKEY *key, const void *input, size_t n, const unsigned char *sig,
		     size_t siglen)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	int ok;

	/* the default padding of an RSA key is PKCS #1 v1.5 */
	ok = key && md && EVP_PKEY_is_a(key, "RSA") &&
	     EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key) == 1 &&
	     EVP_DigestVerify(md, sig, siglen, input, n) == 1;
	EVP_MD_CTX_free(md);
	return ok;
}

static int is_b64url(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_'))
			return 0;
	}
	return 1;
}

int jws_split(const char *token, size_t len, size_t max, const char **dot1, const char **dot2)
{
	const char *d1, *d2;

	if (len == 0 || len > max)
		return -1;
	d1 = memchr(token, '.', len);
	d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - token)) : NULL;
	/* base64url has no dot and no NUL: a third dot or a NUL fails below */
	if (!d1 || !d2 || d2 + 1 >= token + len || !is_b64url(token, (size_t)(d1 - token)) ||
	    !is_b64url(d1 + 1, (size_t)(d2 - d1 - 1)) ||
	    !is_b64url(d2 + 1, len - (size_t)(d2 + 1 - token)))
		return -1;
	*dot1 = d1;
	*dot2 = d2;
	return 0;
}
