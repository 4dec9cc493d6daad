/* totp: time-based one-time passwords (RFC 6238, HMAC-SHA1, 6 digits,
 * 30-second steps) for the second factor of fcgi-apps/auth/totp.c, with
 * OpenSSL's HMAC (no hand-rolled primitive), and the base32 (RFC 4648, no
 * padding) that authenticator apps read secrets in. */
#ifndef TH_TOTP_H
#define TH_TOTP_H

#include <stddef.h>
#include <stdint.h>

#define TOTP_SECRET_LEN 20 /* bytes: the RFC's SHA1 example size */
#define TOTP_PERIOD_S 30
#define TOTP_DIGITS 6
#define TOTP_WINDOW 1 /* steps accepted on either side of now (clock drift) */
/* base32 of n bytes, without padding, and its NUL */
#define TOTP_B32_SIZE(n) (((n)*8 + 4) / 5 + 1)

/* The code of secret (len bytes) at time step `step` (unix time / period),
 * digits long (6 or 8); -1 when HMAC fails. */
long totp_code(const uint8_t *secret, size_t len, uint64_t step, int digits);

/* Checks code (exactly TOTP_DIGITS ASCII digits) against secret around
 * unix time now (± TOTP_WINDOW steps).  The matched step into *step (the
 * caller refuses a step at or below the last one it accepted: RFC 6238
 * 5.2, one use a code); 1 when it matches, 0 when not. */
int totp_check(const uint8_t *secret, size_t len, const char *code, uint64_t now, uint64_t *step);

/* base32 of in (n bytes) into out (TOTP_B32_SIZE(n) at least): upper case,
 * no padding; returns out. */
char *totp_b32(const uint8_t *in, size_t n, char *out);

#endif
