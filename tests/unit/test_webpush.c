/* Unit tests for lib/webpush.c: RFC 8291's own example (Section 5), key
 * checks, a fresh-key round trip decrypted here with OpenSSL, and the
 * VAPID header (RFC 8292) verified with the key's public half. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/pem.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "webpush.h"

/* RFC 8291 Section 5 */
static const char plaintext[] = "When I grow up, I want to be a watermelon";
static const char as_priv_b64[] = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw";
static const char as_pub_b64[] = "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInm"
				 "YWAmS6TlzAC8wEqKK6PBru3jl7A8";
static const char ua_pub_b64[] = "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm"
				 "4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
static const char salt_b64[] = "DGv6ra1nlYgDCS1FRnbzlw";
static const char auth_b64[] = "BTBZMqHH6r4Tts7J_aSIgg";
static const char body_b64[] =
	"DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInm"
	"YWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNW"
	"QexSgSxsj_Qulcy4a-fN";

static void dec(const char *b64, unsigned char *out, size_t want)
{
	assert_int_equal(webpush_b64url_decode(b64, out, want), (long)want);
}

static void test_rfc8291_example(void **state)
{
	unsigned char as_priv[32], as_pub[65], ua_pub[65], salt[16], auth[16], want[256];
	unsigned char *out = NULL;
	size_t out_len = 0;
	long want_len;

	(void)state;
	dec(as_priv_b64, as_priv, sizeof(as_priv));
	dec(as_pub_b64, as_pub, sizeof(as_pub));
	dec(ua_pub_b64, ua_pub, sizeof(ua_pub));
	dec(salt_b64, salt, sizeof(salt));
	dec(auth_b64, auth, sizeof(auth));
	want_len = webpush_b64url_decode(body_b64, want, sizeof(want));
	assert_int_equal(want_len, (long)(strlen(plaintext) + WEBPUSH_OVERHEAD));
	assert_int_equal(webpush_encrypt(ua_pub, auth, plaintext, strlen(plaintext), salt, as_priv,
					 as_pub, &out, &out_len),
			 0);
	assert_int_equal(out_len, (size_t)want_len);
	assert_memory_equal(out, want, out_len);
	free(out);
}

static void test_key_checks(void **state)
{
	unsigned char ua_pub[65];

	(void)state;
	dec(ua_pub_b64, ua_pub, sizeof(ua_pub));
	assert_true(webpush_p256_ok(ua_pub, 65));
	assert_false(webpush_p256_ok(ua_pub, 64));
	assert_false(webpush_p256_ok(NULL, 65));
	ua_pub[0] = 0x02; /* compressed form: not what the Push API gives */
	assert_false(webpush_p256_ok(ua_pub, 65));
	ua_pub[0] = 0x04;
	ua_pub[64] ^= 1; /* off the curve */
	assert_false(webpush_p256_ok(ua_pub, 65));
	memset(ua_pub + 1, 0, 64);
	assert_false(webpush_p256_ok(ua_pub, 65));
	assert_int_equal(webpush_b64url_decode("a+b/", ua_pub, 65), -1);
	assert_int_equal(webpush_b64url_decode(ua_pub_b64, ua_pub, 64), -1);
}

/* HKDF-SHA256 for the decryption side of the round trip */
static void hkdf(const unsigned char *salt, size_t sl, const unsigned char *ikm, size_t il,
		 const void *info, size_t nl, unsigned char *out, size_t ol)
{
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	EVP_KDF_CTX *k = EVP_KDF_CTX_new(kdf);
	OSSL_PARAM p[] = {OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256",
							   0),
			  OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)ikm, il),
			  OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, sl),
			  OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, nl),
			  OSSL_PARAM_construct_end()};

	assert_int_equal(EVP_KDF_derive(k, out, ol, p), 1);
	EVP_KDF_CTX_free(k);
	EVP_KDF_free(kdf);
}

/* A fresh server key each call: the user agent's side decrypts it. */
static void test_round_trip(void **state)
{
	EVP_PKEY *ua = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256"), *peer = NULL;
	EVP_PKEY_CTX *ctx;
	unsigned char ua_pub[65], auth[16], secret[32], ikm[32], cek[16], nonce[12], info[144];
	unsigned char *a = NULL, *b = NULL, plain[64];
	size_t n, alen, blen, slen = 32;
	int len;
	EVP_CIPHER_CTX *c;

	(void)state;
	assert_non_null(ua);
	assert_int_equal(EVP_PKEY_get_octet_string_param(ua, OSSL_PKEY_PARAM_PUB_KEY, ua_pub, 65,
							 &n),
			 1);
	randombytes_buf(auth, sizeof(auth));
	assert_int_equal(webpush_encrypt(ua_pub, auth, "hi", 2, NULL, NULL, NULL, &a, &alen), 0);
	assert_int_equal(webpush_encrypt(ua_pub, auth, "hi", 2, NULL, NULL, NULL, &b, &blen), 0);
	assert_int_equal(alen, 2 + WEBPUSH_OVERHEAD);
	/* fresh salt and key each time */
	assert_memory_not_equal(a, b, 16);
	assert_memory_not_equal(a + 21, b + 21, 65);
	assert_int_equal(a[20], 65);
	/* decrypt a as the browser would */
	{
		OSSL_PARAM p[] = {OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME,
								   (char *)"prime256v1", 0),
				  OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, a + 21,
								    65),
				  OSSL_PARAM_construct_end()};
		EVP_PKEY_CTX *f = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);

		assert_int_equal(EVP_PKEY_fromdata_init(f), 1);
		assert_int_equal(EVP_PKEY_fromdata(f, &peer, EVP_PKEY_PUBLIC_KEY, p), 1);
		EVP_PKEY_CTX_free(f);
	}
	ctx = EVP_PKEY_CTX_new_from_pkey(NULL, ua, NULL);
	assert_int_equal(EVP_PKEY_derive_init(ctx), 1);
	assert_int_equal(EVP_PKEY_derive_set_peer(ctx, peer), 1);
	assert_int_equal(EVP_PKEY_derive(ctx, secret, &slen), 1);
	EVP_PKEY_CTX_free(ctx);
	memcpy(info, "WebPush: info", 14);
	memcpy(info + 14, ua_pub, 65);
	memcpy(info + 79, a + 21, 65);
	hkdf(auth, 16, secret, 32, info, 144, ikm, 32);
	hkdf(a, 16, ikm, 32, "Content-Encoding: aes128gcm", 28, cek, 16);
	hkdf(a, 16, ikm, 32, "Content-Encoding: nonce", 24, nonce, 12);
	c = EVP_CIPHER_CTX_new();
	assert_int_equal(EVP_DecryptInit_ex(c, EVP_aes_128_gcm(), NULL, cek, nonce), 1);
	assert_int_equal(EVP_DecryptUpdate(c, plain, &len, a + 86, 3), 1);
	assert_int_equal(EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, 16, a + 89), 1);
	assert_int_equal(EVP_DecryptFinal_ex(c, plain + len, &len), 1);
	assert_memory_equal(plain, "hi\x02", 3);
	EVP_CIPHER_CTX_free(c);
	EVP_PKEY_free(peer);
	EVP_PKEY_free(ua);
	free(a);
	free(b);
	/* too long for one record, a bad key */
	assert_int_equal(webpush_encrypt(ua_pub, auth, plain, WEBPUSH_PLAIN_MAX + 1, NULL, NULL,
					 NULL, &a, &alen),
			 -1);
	ua_pub[64] ^= 1;
	assert_int_equal(webpush_encrypt(ua_pub, auth, "hi", 2, NULL, NULL, NULL, &a, &alen), -1);
	assert_null(a);
}

static void test_origin(void **state)
{
	char o[64];

	(void)state;
	assert_int_equal(webpush_origin("https://fcm.googleapis.com/fcm/send/abc", o, sizeof(o)),
			 0);
	assert_string_equal(o, "https://fcm.googleapis.com");
	assert_int_equal(webpush_origin("http://127.0.0.1:9000/p?x", o, sizeof(o)), 0);
	assert_string_equal(o, "http://127.0.0.1:9000");
	assert_int_equal(webpush_origin("ftp://x/y", o, sizeof(o)), -1);
	assert_int_equal(webpush_origin("https:///y", o, sizeof(o)), -1);
	assert_int_equal(webpush_origin("https://u@h/y", o, sizeof(o)), -1);
}

/* The header's JWT verifies with its k= key and carries aud, exp, sub. */
static void test_vapid(void **state)
{
	char path[] = "/tmp/th-vapid-XXXXXX", *h, *t, *k, *dot1, *dot2, claims[512];
	unsigned char pub[65], sig[64], der[80], *dp = der;
	EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256"), *vk = NULL;
	struct webpush_vapid *v;
	EVP_MD_CTX *md;
	ECDSA_SIG *es;
	size_t n = 0;
	long cl;
	FILE *f;
	int fd = mkstemp(path);

	(void)state;
	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	assert_int_equal(PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL), 1);
	fclose(f);
	assert_null(webpush_vapid_load(path, "nobody"));
	v = webpush_vapid_load(path, "mailto:ops@townhall.example");
	unlink(path);
	assert_non_null(v);
	h = webpush_vapid_header(v, "https://push.example.net/send/1?x=2", 1000000, 3600);
	assert_non_null(h);
	assert_int_equal(strncmp(h, "vapid t=", 8), 0);
	k = strstr(h, ", k=");
	assert_non_null(k);
	assert_string_equal(k + 4, webpush_vapid_public(v));
	*k = '\0';
	t = h + 8;
	dot1 = strchr(t, '.');
	dot2 = strrchr(t, '.');
	assert_true(dot1 && dot2 > dot1);
	*dot2 = '\0';
	cl = webpush_b64url_decode(dot1 + 1, (unsigned char *)claims, sizeof(claims) - 1);
	assert_true(cl > 0);
	claims[cl] = '\0';
	assert_string_equal(claims, "{\"aud\":\"https://push.example.net\",\"exp\":1003600,"
				    "\"sub\":\"mailto:ops@townhall.example\"}");
	assert_int_equal(webpush_b64url_decode(dot2 + 1, sig, sizeof(sig)), 64);
	assert_int_equal(webpush_b64url_decode(k + 4, pub, sizeof(pub)), 65);
	assert_true(webpush_p256_ok(pub, 65));
	/* verify with the published key */
	{
		OSSL_PARAM p[] = {OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME,
								   (char *)"prime256v1", 0),
				  OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, pub,
								    65),
				  OSSL_PARAM_construct_end()};
		EVP_PKEY_CTX *fc = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);

		assert_int_equal(EVP_PKEY_fromdata_init(fc), 1);
		assert_int_equal(EVP_PKEY_fromdata(fc, &vk, EVP_PKEY_PUBLIC_KEY, p), 1);
		EVP_PKEY_CTX_free(fc);
	}
	es = ECDSA_SIG_new();
	assert_int_equal(ECDSA_SIG_set0(es, BN_bin2bn(sig, 32, NULL),
					BN_bin2bn(sig + 32, 32, NULL)),
			 1);
	n = (size_t)i2d_ECDSA_SIG(es, &dp);
	ECDSA_SIG_free(es);
	md = EVP_MD_CTX_new();
	assert_int_equal(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, vk), 1);
	assert_int_equal(EVP_DigestVerify(md, der, n, (unsigned char *)t, strlen(t)), 1);
	EVP_MD_CTX_free(md);
	/* exp is capped at 24 h */
	free(h);
	h = webpush_vapid_header(v, "https://push.example.net/x", 0, 7 * 86400);
	assert_non_null(h);
	free(h);
	assert_null(webpush_vapid_header(v, "ftp://x", 0, 60));
	EVP_PKEY_free(vk);
	EVP_PKEY_free(key);
	webpush_vapid_free(v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc8291_example), cmocka_unit_test(test_key_checks),
		cmocka_unit_test(test_round_trip),      cmocka_unit_test(test_origin),
		cmocka_unit_test(test_vapid),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
