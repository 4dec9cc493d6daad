/* password: argon2id (libsodium crypto_pwhash_str), cost from settings. */
#include <sodium.h>
#include <string.h>

#include "auth.h"
#include "config.h"

static unsigned long long opslimit;
static size_t memlimit;
static char dummy[crypto_pwhash_STRBYTES];

int password_init(void)
{
	unsigned char rnd[32];

	if (sodium_init() < 0)
		return -1;
	/* OWASP's minimum for argon2id: 19 MiB, 2 passes */
	opslimit = (unsigned long long)cfg_int("TH_ARGON2_OPSLIMIT", 2, 1, 64);
	memlimit = (size_t)cfg_int("TH_ARGON2_MEMLIMIT", 19922944, 8192,
				   (long long)1 << 32);
	randombytes_buf(rnd, sizeof(rnd));
	/* the dummy hash verifies nothing a client can send: its password is
	 * 32 random bytes, not even shown as text */
	if (crypto_pwhash_str_alg(dummy, (const char *)rnd, sizeof(rnd), opslimit, memlimit,
				  crypto_pwhash_ALG_ARGON2ID13) != 0)
		return -1;
	sodium_memzero(rnd, sizeof(rnd));
	return 0;
}

int password_hash(const char *password, char *out, size_t outsize)
{
	if (outsize < crypto_pwhash_STRBYTES)
		return -1;
	return crypto_pwhash_str_alg(out, password, strlen(password), opslimit, memlimit,
				     crypto_pwhash_ALG_ARGON2ID13) == 0 ? 0 : -1;
}

int password_verify(const char *hash, const char *password)
{
	int ok;

	if (!hash || strlen(hash) >= crypto_pwhash_STRBYTES) {
		/* same work as a real check; the dummy never matches */
		int dummy_ok = crypto_pwhash_str_verify(dummy, password, strlen(password)) == 0;

		return dummy_ok && 0;
	}
	ok = crypto_pwhash_str_verify(hash, password, strlen(password)) == 0;
	return ok;
}
