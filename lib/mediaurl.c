/* mediaurl: HMAC-SHA256 signed media URLs. */
#include "mediaurl.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "keyfile.h"

#define SECRET_MIN 32

static unsigned char secret[256];
static size_t secret_len;
static long ttl = 3600;

int mediaurl_init(void)
{
	ssize_t n;

	if (sodium_init() < 0)
		return -1;
	ttl = (long)cfg_int("TH_MEDIA_URL_TTL", 3600, 10, 7 * 86400);
	n = keyfile_read("media URLs", "TH_MEDIA_URL_SECRET_FILE", "media-url.secret", secret,
			 sizeof(secret), SECRET_MIN);
	if (n < 0)
		return -1;
	secret_len = (size_t)n;
	return 0;
}

long mediaurl_ttl(void)
{
	return ttl;
}

/* The signature of "<id>/<variant>/<exp>".  -1 when that text would not
 * name exactly one id and variant: a '/' inside either ("a/b" + "c" and
 * "a" + "b/c" sign the same text), or too long to sign whole (a cut text
 * would sign every id that shares its start). */
static int sign(const char *id, const char *variant, long long exp, char out[65])
{
	unsigned char mac[crypto_auth_hmacsha256_BYTES];
	char msg[160];
	int n = snprintf(msg, sizeof(msg), "%s/%s/%lld", id, variant, exp);
	crypto_auth_hmacsha256_state st;

	if (n < 0 || (size_t)n >= sizeof(msg) || strchr(id, '/') || strchr(variant, '/'))
		return -1;
	crypto_auth_hmacsha256_init(&st, secret, secret_len);
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)msg, (unsigned long long)n);
	crypto_auth_hmacsha256_final(&st, mac);
	sodium_bin2hex(out, 65, mac, sizeof(mac));
	return 0;
}

char *mediaurl_write(char *buf, size_t size, const char *id, const char *variant, int is_public)
{
	long long exp;
	char sig[65];
	int n;

	if (is_public) {
		n = snprintf(buf, size, "/media/%s/%s", id, variant);
	} else {
		exp = ((long long)time(NULL) / ttl + 2) * ttl; /* between ttl and 2 ttl ahead */
		if (sign(id, variant, exp, sig) < 0)
			return NULL;
		n = snprintf(buf, size, "/media/%s/%s?exp=%lld&sig=%s", id, variant, exp, sig);
	}
	return n > 0 && (size_t)n < size ? buf : NULL;
}

char *mediaurl_make(struct arena *a, const char *id, const char *variant, int is_public)
{
	char buf[256];

	return mediaurl_write(buf, sizeof(buf), id, variant, is_public) ? arena_strdup(a, buf)
									: NULL;
}

int mediaurl_check(const char *id, const char *variant, const char *exp_s, const char *sig)
{
	long long exp;
	char want[65];

	if (!exp_s || !sig || cfg_parse_int(exp_s, 0, 253402300799LL, &exp) < 0 ||
	    strlen(sig) != 64 || !secret_len)
		return -1;
	if (exp < (long long)time(NULL))
		return -1;
	if (sign(id, variant, exp, want) < 0)
		return -1;
	/* constant time: the comparison must not tell how much of it was right */
	return sodium_memcmp(want, sig, 64) == 0 ? 1 : -1;
}
