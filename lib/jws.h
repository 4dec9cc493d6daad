/* jws: the ES256 signature of JWS (RFC 7515, RFC 7518 3.4) with OpenSSL:
 * the access tokens (token.c) and the VAPID tokens of Web Push (webpush.c)
 * sign with it. */
#ifndef TH_JWS_H
#define TH_JWS_H
#include <openssl/evp.h>
#include <stddef.h>

#define JWS_ES256_SIG_LEN 64

/* The raw r||s signature (64 bytes) of the n bytes of input (the JWS
 * signing input, header.payload) with the P-256 private key.  0, or -1. */
int jws_es256_sign(EVP_PKEY *key, const void *input, size_t n,
		   unsigned char raw[JWS_ES256_SIG_LEN]);

#endif
