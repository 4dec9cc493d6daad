/* jws: ES256 signatures, raw r||s from OpenSSL's DER. */
#include "jws.h"

#include <openssl/ec.h>

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
