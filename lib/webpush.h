/* webpush: the message encryption of RFC 8291 (aes128gcm, RFC 8188, one
 * record) and the VAPID authorization of RFC 8292, with OpenSSL's EVP
 * primitives (ECDH P-256, HKDF-SHA256, AES-128-GCM, ECDSA P-256 SHA-256).
 *
 * th-pusher (fcgi-apps/push) encrypts each notification for a
 * subscription's p256dh key and auth secret and signs a VAPID JWT for the
 * endpoint's origin; the realtime app checks a subscription's key with
 * webpush_p256_ok() and publishes the VAPID public key. */
#ifndef TH_WEBPUSH_H
#define TH_WEBPUSH_H
#include <stddef.h>

#define WEBPUSH_P256_LEN 65 /* an uncompressed P-256 point: 0x04 || X || Y */
#define WEBPUSH_AUTH_LEN 16 /* the subscription's auth secret */
#define WEBPUSH_SALT_LEN 16
#define WEBPUSH_PRIV_LEN 32 /* a raw P-256 private scalar */
#define WEBPUSH_RS 4096     /* the record size written in the header */
/* header (salt, rs, idlen, the server's key) + padding delimiter + tag */
#define WEBPUSH_OVERHEAD (WEBPUSH_SALT_LEN + 4 + 1 + WEBPUSH_P256_LEN + 1 + 16)
/* the most plaintext one record holds */
#define WEBPUSH_PLAIN_MAX (WEBPUSH_RS - 1 - 16)
#define WEBPUSH_VAPID_TTL_S (12 * 3600) /* a JWT's life (RFC 8292: at most 24 h) */

/* 1 when p (n bytes) is an uncompressed point on P-256 (checked by OpenSSL). */
int webpush_p256_ok(const unsigned char *p, size_t n);

/* The base64url (no padding) s decoded into out (at most size bytes); the
 * length, or -1 (not base64url, or too long). */
long webpush_b64url_decode(const char *s, unsigned char *out, size_t size);

/* The aes128gcm body of plain (at most WEBPUSH_PLAIN_MAX bytes) for the
 * subscription's key ua_pub and secret auth.  salt, as_priv and as_pub (the
 * server's ephemeral key pair) come from the caller only for tests against
 * fixed vectors; NULL: drawn fresh (always in production).  *out is
 * malloc'd (the caller frees it), plain_len + WEBPUSH_OVERHEAD bytes long.
 * 0, or -1 (a bad key, too long, or OpenSSL failed). */
int webpush_encrypt(const unsigned char ua_pub[WEBPUSH_P256_LEN],
		    const unsigned char auth[WEBPUSH_AUTH_LEN], const void *plain, size_t plain_len,
		    const unsigned char *salt, const unsigned char *as_priv,
		    const unsigned char *as_pub, unsigned char **out, size_t *out_len);

/* The origin (scheme://host[:port]) of an http(s) URL into out; 0, or -1
 * (not http(s), no host, or too long). */
int webpush_origin(const char *url, char *out, size_t size);

/* The VAPID key pair: a P-256 private key in PEM (TH_VAPID_KEY_FILE) and
 * the contact (TH_VAPID_SUBJECT, mailto: or https:). */
struct webpush_vapid;
/* NULL with a log line when the file is no P-256 key or the subject is no
 * mailto:/https: URL. */
struct webpush_vapid *webpush_vapid_load(const char *pem_path, const char *subject);
void webpush_vapid_free(struct webpush_vapid *v);
/* The public key: base64url of the uncompressed point (87 characters). */
const char *webpush_vapid_public(const struct webpush_vapid *v);
/* "vapid t=<JWT>, k=<public key>" for endpoint, the JWT's exp now + ttl_s
 * (capped at 24 h); malloc'd (caller frees), or NULL. */
char *webpush_vapid_header(const struct webpush_vapid *v, const char *endpoint, long now,
			   long ttl_s);

#endif
