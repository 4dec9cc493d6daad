/* jws: the signatures of JWS (RFC 7515, RFC 7518 3.3 and 3.4) with OpenSSL:
 * the access tokens (token.c) and the VAPID tokens of Web Push (webpush.c)
 * sign with ES256; token.c and the ID tokens of OIDC providers (idtoken.c)
 * verify ES256 and RS256 with it. */
#ifndef TH_JWS_H
#define TH_JWS_H
#include <openssl/evp.h>
#include <stddef.h>

#define JWS_ES256_SIG_LEN 64

/* The raw r||s signature (64 bytes) of the n bytes of input (the JWS
 * signing input, header.payload) with the P-256 private key.  0, or -1. */
int jws_es256_sign(EVP_PKEY *key, const void *input, size_t n,
		   unsigned char raw[JWS_ES256_SIG_LEN]);

/* 1 when raw (r||s, JWS_ES256_SIG_LEN bytes) is a valid ES256 signature of
 * the n bytes of input under the P-256 public key; 0 otherwise. */
int jws_es256_verify(EVP_PKEY *key, const void *input, size_t n,
		     const unsigned char raw[JWS_ES256_SIG_LEN]);

/* 1 when sig (siglen bytes, RSASSA-PKCS1-v1_5 with SHA-256) is a valid
 * signature of input under the RSA public key; 0 otherwise. */
int jws_rs256_verify(EVP_PKEY *key, const void *input, size_t n, const unsigned char *sig,
		     size_t siglen);

/* Splits a compact JWS (len bytes, not NUL-terminated) into its three
 * parts: 0 when it is 1 to max bytes of base64url in three parts separated
 * by two dots (the signature not empty), with *dot1 and *dot2 set; -1
 * otherwise. */
int jws_split(const char *token, size_t len, size_t max, const char **dot1, const char **dot2);

#endif
