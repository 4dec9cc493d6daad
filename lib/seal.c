/* seal: XChaCha20-Poly1305 blobs for secrets at rest (seal.h). */
#include "seal.h"

#include <sodium.h>
#include <string.h>

#include "keyfile.h"

#define KEY_MIN 32
#define NONCE_LEN crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define TAG_LEN crypto_aead_xchacha20poly1305_ietf_ABYTES

_Static_assert(SEAL_OVERHEAD == 1 + NONCE_LEN + TAG_LEN, "SEAL_OVERHEAD");

static unsigned char key[crypto_aead_xchacha20poly1305_ietf_KEYBYTES];
static int have_key;

int seal_init(void)
{
	unsigned char buf[512];
	ssize_t n;

	have_key = 0;
	sodium_memzero(key, sizeof(key));
	if (sodium_init() < 0)
		return -1;
	n = keyfile_read("seal (the key for secrets at rest)", "TH_SEAL_KEY_FILE", "seal.key", buf,
			 sizeof(buf), KEY_MIN);
	if (n >= 0) {
		/* any length of key material into exactly the AEAD's key size */
		crypto_generichash(key, sizeof(key), buf, (size_t)n, NULL, 0);
		have_key = 1;
	}
	sodium_memzero(buf, sizeof(buf));
	return have_key ? 0 : -1;
}

ssize_t seal_close(const char *ad, const unsigned char *in, size_t n, unsigned char *out,
		   size_t cap)
{
	unsigned long long clen = 0;

	if (!have_key || cap < SEAL_OVERHEAD || n > cap - SEAL_OVERHEAD)
		return -1;
	out[0] = SEAL_VERSION;
	randombytes_buf(out + 1, NONCE_LEN);
	if (crypto_aead_xchacha20poly1305_ietf_encrypt(out + 1 + NONCE_LEN, &clen, in, n,
						       (const unsigned char *)ad, strlen(ad), NULL,
						       out + 1, key) != 0)
		return -1;
	return (ssize_t)(1 + NONCE_LEN + clen);
}

ssize_t seal_open(const char *ad, const unsigned char *in, size_t n, unsigned char *out, size_t cap)
{
	unsigned long long mlen = 0;

	if (!have_key || n < SEAL_OVERHEAD || in[0] != SEAL_VERSION || n - SEAL_OVERHEAD > cap)
		return -1;
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(out, &mlen, NULL, in + 1 + NONCE_LEN,
						       n - 1 - NONCE_LEN, (const unsigned char *)ad,
						       strlen(ad), in + 1, key) != 0)
		return -1;
	return (ssize_t)mlen;
}
