/* totp: RFC 6238 codes over OpenSSL's HMAC-SHA1. */
#include "totp.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <string.h>

long totp_code(const uint8_t *secret, size_t len, uint64_t step, int digits)
{
	uint8_t msg[8], mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;
	long mod = digits == 8 ? 100000000L : 1000000L;
	uint32_t bin;
	int off;

	for (int i = 7; i >= 0; i--, step >>= 8)
		msg[i] = (uint8_t)(step & 0xff);
	if (!HMAC(EVP_sha1(), secret, (int)len, msg, sizeof(msg), mac, &maclen) || maclen < 20)
		return -1;
	/* RFC 4226 5.3: dynamic truncation */
	off = mac[maclen - 1] & 0x0f;
	bin = (uint32_t)(mac[off] & 0x7f) << 24 | (uint32_t)mac[off + 1] << 16 |
	      (uint32_t)mac[off + 2] << 8 | (uint32_t)mac[off + 3];
	return (long)(bin % (uint32_t)mod);
}

int totp_check(const uint8_t *secret, size_t len, const char *code, uint64_t now, uint64_t *step)
{
	uint64_t t = now / TOTP_PERIOD_S;
	long want = 0;
	int found = 0;

	if (!code || strlen(code) != TOTP_DIGITS)
		return 0;
	for (int i = 0; i < TOTP_DIGITS; i++) {
		if (code[i] < '0' || code[i] > '9')
			return 0;
		want = want * 10 + (code[i] - '0');
	}
	/* every step of the window is computed, a match or not: the time taken
	 * says nothing about which one matched */
	for (int d = -TOTP_WINDOW; d <= TOTP_WINDOW; d++) {
		uint64_t s = t + (uint64_t)(int64_t)d;

		if (totp_code(secret, len, s, TOTP_DIGITS) == want && !found) {
			*step = s;
			found = 1;
		}
	}
	return found;
}

char *totp_b32(const uint8_t *in, size_t n, char *out)
{
	static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
	uint32_t buf = 0;
	int bits = 0;
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		buf = buf << 8 | in[i];
		bits += 8;
		while (bits >= 5) {
			out[o++] = abc[(buf >> (bits - 5)) & 31];
			bits -= 5;
		}
	}
	if (bits > 0)
		out[o++] = abc[(buf << (5 - bits)) & 31];
	out[o] = '\0';
	return out;
}
