/* webpush: RFC 8291 encryption and RFC 8292 VAPID with OpenSSL EVP. */
#include "webpush.h"

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/param_build.h>
#include <openssl/params.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jws.h"
#include "log.h"

#define B64_P256 ((WEBPUSH_P256_LEN * 4 + 2) / 3 + 1) /* 87 characters and the NUL */

struct webpush_vapid {
	EVP_PKEY *key;
	char subject[256];
	char pub[B64_P256 + 1];
};

long webpush_b64url_decode(const char *s, unsigned char *out, size_t size)
{
	size_t n = 0;

	if (!s || sodium_base642bin(out, size, s, strlen(s), NULL, &n, NULL,
				    sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0)
		return -1;
	return (long)n;
}

static void b64url(char *dst, size_t size, const unsigned char *bin, size_t n)
{
	sodium_bin2base64(dst, size, bin, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

/* An EC P-256 key from a raw point (and a raw private scalar, or NULL). */
static EVP_PKEY *p256_key(const unsigned char *pub, const unsigned char *priv)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	OSSL_PARAM *params = NULL;
	EVP_PKEY *pk = NULL;
	BIGNUM *d = NULL;

	if (!ctx || !bld ||
	    !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) ||
	    !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub, WEBPUSH_P256_LEN))
		goto out;
	if (priv) {
		d = BN_bin2bn(priv, WEBPUSH_PRIV_LEN, NULL);
		if (!d || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, d))
			goto out;
	}
	params = OSSL_PARAM_BLD_to_param(bld);
	if (!params || EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &pk, priv ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY, params) != 1)
		pk = NULL;
out:
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	BN_clear_free(d);
	EVP_PKEY_CTX_free(ctx);
	return pk;
}

int webpush_p256_ok(const unsigned char *p, size_t n)
{
	EVP_PKEY *pk;
	EVP_PKEY_CTX *ctx = NULL;
	int ok = 0;

	if (!p || n != WEBPUSH_P256_LEN || p[0] != 0x04)
		return 0;
	pk = p256_key(p, NULL);
	if (!pk)
		return 0;
	ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL);
	/* the point is on the curve and not the identity */
	ok = ctx && EVP_PKEY_public_check(ctx) == 1;
	EVP_PKEY_CTX_free(ctx);
	EVP_PKEY_free(pk);
	return ok;
}

/* HKDF-SHA256 (extract then expand) of ikm with salt and info into out. */
static int hkdf(const unsigned char *salt, size_t salt_len, const unsigned char *ikm,
		size_t ikm_len, const unsigned char *info, size_t info_len, unsigned char *out,
		size_t out_len)
{
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	EVP_KDF_CTX *kctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
	OSSL_PARAM params[5];
	int rc = -1;

	if (!kctx)
		goto out;
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0);
	params[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)ikm, ikm_len);
	params[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, salt_len);
	params[3] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, info_len);
	params[4] = OSSL_PARAM_construct_end();
	if (EVP_KDF_derive(kctx, out, out_len, params) == 1)
		rc = 0;
out:
	EVP_KDF_CTX_free(kctx);
	EVP_KDF_free(kdf);
	return rc;
}

/* The ECDH shared secret (32 bytes) of own and the peer's point. */
static int ecdh(EVP_PKEY *own, const unsigned char *peer_pub, unsigned char secret[32])
{
	EVP_PKEY *peer = p256_key(peer_pub, NULL);
	EVP_PKEY_CTX *ctx = peer ? EVP_PKEY_CTX_new_from_pkey(NULL, own, NULL) : NULL;
	size_t n = 32;
	int rc = -1;

	if (ctx && EVP_PKEY_derive_init(ctx) == 1 && EVP_PKEY_derive_set_peer(ctx, peer) == 1 &&
	    EVP_PKEY_derive(ctx, secret, &n) == 1 && n == 32)
		rc = 0;
	EVP_PKEY_CTX_free(ctx);
	EVP_PKEY_free(peer);
	return rc;
}

/* AES-128-GCM of in (n bytes) then the delimiter 0x02 into out, the tag after. */
static int seal(const unsigned char key[16], const unsigned char nonce[12], const unsigned char *in,
		size_t n, unsigned char *out)
{
	static const unsigned char delim = 0x02;
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	int len = 0, rc = -1;
	size_t done;

	if (!c || EVP_EncryptInit_ex(c, EVP_aes_128_gcm(), NULL, NULL, NULL) != 1 ||
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, 12, NULL) != 1 ||
	    EVP_EncryptInit_ex(c, NULL, NULL, key, nonce) != 1 ||
	    EVP_EncryptUpdate(c, out, &len, in, (int)n) != 1)
		goto out;
	done = (size_t)len;
	if (EVP_EncryptUpdate(c, out + done, &len, &delim, 1) != 1)
		goto out;
	done += (size_t)len;
	if (EVP_EncryptFinal_ex(c, out + done, &len) != 1)
		goto out;
	done += (size_t)len;
	if (done != n + 1 || EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16, out + done) != 1)
		goto out;
	rc = 0;
out:
	EVP_CIPHER_CTX_free(c);
	return rc;
}

int webpush_encrypt(const unsigned char ua_pub[WEBPUSH_P256_LEN],
		    const unsigned char auth[WEBPUSH_AUTH_LEN], const void *plain, size_t plain_len,
		    const unsigned char *salt, const unsigned char *as_priv,
		    const unsigned char *as_pub, unsigned char **out, size_t *out_len)
{
	static const char key_label[] = "WebPush: info"; /* and its NUL */
	static const char cek_label[] = "Content-Encoding: aes128gcm";
	static const char nonce_label[] = "Content-Encoding: nonce";
	unsigned char own_pub[WEBPUSH_P256_LEN], secret[32], ikm[32], prk_info[14 + 2 * 65];
	unsigned char cek[16], nonce[12], *body = NULL, *hdr;
	EVP_PKEY *own = NULL;
	size_t n;
	int rc = -1;

	*out = NULL;
	*out_len = 0;
	if (plain_len > WEBPUSH_PLAIN_MAX || !webpush_p256_ok(ua_pub, WEBPUSH_P256_LEN))
		return -1;
	if (as_priv && as_pub) {
		own = p256_key(as_pub, as_priv);
		if (own)
			memcpy(own_pub, as_pub, sizeof(own_pub));
	} else {
		own = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
		if (own && (EVP_PKEY_get_octet_string_param(own, OSSL_PKEY_PARAM_PUB_KEY, own_pub,
							    sizeof(own_pub), &n) != 1 ||
			    n != sizeof(own_pub)))
			goto out;
	}
	if (!own || ecdh(own, ua_pub, secret) < 0)
		goto out;
	body = malloc(plain_len + WEBPUSH_OVERHEAD);
	if (!body)
		goto out;
	hdr = body;
	if (salt)
		memcpy(hdr, salt, WEBPUSH_SALT_LEN);
	else if (RAND_bytes(hdr, WEBPUSH_SALT_LEN) != 1)
		goto out;
	/* IKM = HKDF(auth, ecdh_secret, "WebPush: info" 0 ua_public as_public, 32) */
	memcpy(prk_info, key_label, sizeof(key_label));
	memcpy(prk_info + sizeof(key_label), ua_pub, WEBPUSH_P256_LEN);
	memcpy(prk_info + sizeof(key_label) + WEBPUSH_P256_LEN, own_pub, WEBPUSH_P256_LEN);
	if (hkdf(auth, WEBPUSH_AUTH_LEN, secret, sizeof(secret), prk_info, sizeof(prk_info), ikm,
		 sizeof(ikm)) < 0 ||
	    hkdf(hdr, WEBPUSH_SALT_LEN, ikm, sizeof(ikm), (const unsigned char *)cek_label,
		 sizeof(cek_label), cek, sizeof(cek)) < 0 ||
	    hkdf(hdr, WEBPUSH_SALT_LEN, ikm, sizeof(ikm), (const unsigned char *)nonce_label,
		 sizeof(nonce_label), nonce, sizeof(nonce)) < 0)
		goto out;
	/* RFC 8188 header: salt, rs (big endian), idlen, keyid = the server's key */
	hdr[16] = (WEBPUSH_RS >> 24) & 0xff;
	hdr[17] = (WEBPUSH_RS >> 16) & 0xff;
	hdr[18] = (WEBPUSH_RS >> 8) & 0xff;
	hdr[19] = WEBPUSH_RS & 0xff;
	hdr[20] = WEBPUSH_P256_LEN;
	memcpy(hdr + 21, own_pub, WEBPUSH_P256_LEN);
	if (seal(cek, nonce, plain, plain_len, hdr + 21 + WEBPUSH_P256_LEN) < 0)
		goto out;
	*out = body;
	*out_len = plain_len + WEBPUSH_OVERHEAD;
	body = NULL;
	rc = 0;
out:
	OPENSSL_cleanse(secret, sizeof(secret));
	OPENSSL_cleanse(ikm, sizeof(ikm));
	OPENSSL_cleanse(cek, sizeof(cek));
	free(body);
	EVP_PKEY_free(own);
	return rc;
}

int webpush_origin(const char *url, char *out, size_t size)
{
	const char *h, *end;
	size_t n;

	if (!url)
		return -1;
	if (strncmp(url, "https://", 8) == 0)
		h = url + 8;
	else if (strncmp(url, "http://", 7) == 0)
		h = url + 7;
	else
		return -1;
	end = h + strcspn(h, "/?#");
	if (end == h || memchr(h, '@', (size_t)(end - h)))
		return -1;
	n = (size_t)(end - url);
	if (n >= size)
		return -1;
	memcpy(out, url, n);
	out[n] = '\0';
	return 0;
}

struct webpush_vapid *webpush_vapid_load(const char *pem_path, const char *subject)
{
	struct webpush_vapid *v = NULL;
	unsigned char pub[WEBPUSH_P256_LEN];
	char curve[32];
	size_t n = 0;
	FILE *f;

	if (!subject || (strncmp(subject, "mailto:", 7) != 0 && strncmp(subject, "https://", 8)) ||
	    strlen(subject) >= sizeof(v->subject) || strpbrk(subject, "\"\\ \r\n\t")) {
		log_error("webpush: TH_VAPID_SUBJECT must be a mailto: or https: URL");
		return NULL;
	}
	f = pem_path ? fopen(pem_path, "r") : NULL;
	if (!f) {
		log_error("webpush: cannot open the VAPID key %s", pem_path ? pem_path : "(unset)");
		return NULL;
	}
	v = calloc(1, sizeof(*v));
	if (v)
		v->key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	if (!v || !v->key || !EVP_PKEY_is_a(v->key, "EC") ||
	    !EVP_PKEY_get_utf8_string_param(v->key, OSSL_PKEY_PARAM_GROUP_NAME, curve,
					    sizeof(curve), NULL) ||
	    strcmp(curve, "prime256v1") != 0 ||
	    EVP_PKEY_get_octet_string_param(v->key, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof(pub),
					    &n) != 1 ||
	    n != sizeof(pub)) {
		log_error("webpush: %s is not a P-256 private key", pem_path);
		webpush_vapid_free(v);
		return NULL;
	}
	snprintf(v->subject, sizeof(v->subject), "%s", subject);
	b64url(v->pub, sizeof(v->pub), pub, sizeof(pub));
	return v;
}

void webpush_vapid_free(struct webpush_vapid *v)
{
	if (!v)
		return;
	EVP_PKEY_free(v->key);
	free(v);
}

const char *webpush_vapid_public(const struct webpush_vapid *v)
{
	return v->pub;
}

char *webpush_vapid_header(const struct webpush_vapid *v, const char *endpoint, long now,
			   long ttl_s)
{
	static const char header[] = "{\"typ\":\"JWT\",\"alg\":\"ES256\"}";
	char origin[1100], claims[1500], *out = NULL, *buf = NULL;
	unsigned char raw[JWS_ES256_SIG_LEN];
	size_t size, n;

	if (webpush_origin(endpoint, origin, sizeof(origin)) < 0 || strpbrk(origin, "\"\\") != NULL)
		return NULL;
	if (ttl_s <= 0 || ttl_s > 24 * 3600)
		ttl_s = 24 * 3600;
	snprintf(claims, sizeof(claims), "{\"aud\":\"%s\",\"exp\":%ld,\"sub\":\"%s\"}", origin,
		 now + ttl_s, v->subject);
	size = sodium_base64_ENCODED_LEN(sizeof(header), sodium_base64_VARIANT_URLSAFE_NO_PADDING) +
	       sodium_base64_ENCODED_LEN(strlen(claims), sodium_base64_VARIANT_URLSAFE_NO_PADDING) +
	       sodium_base64_ENCODED_LEN(64, sodium_base64_VARIANT_URLSAFE_NO_PADDING) +
	       sizeof(v->pub) + 32;
	buf = malloc(size);
	if (!buf)
		goto out;
	n = (size_t)snprintf(buf, size, "vapid t=");
	b64url(buf + n, size - n, (const unsigned char *)header, sizeof(header) - 1);
	n += strlen(buf + n);
	buf[n++] = '.';
	b64url(buf + n, size - n, (const unsigned char *)claims, strlen(claims));
	n += strlen(buf + n);
	/* the JWS signing input is header.claims, after "vapid t=" */
	if (jws_es256_sign(v->key, buf + 8, n - 8, raw) < 0)
		goto out;
	buf[n++] = '.';
	b64url(buf + n, size - n, raw, sizeof(raw));
	n += strlen(buf + n);
	snprintf(buf + n, size - n, ", k=%s", v->pub);
	out = buf;
	buf = NULL;
out:
	free(buf);
	return out;
}
