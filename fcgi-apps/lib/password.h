/* password: argon2id password hashes as PHC strings
 * ("$argon2id$v=19$m=19456,t=2,p=1$salt$hash").
 *
 * Cost from TH_ARGON2_OPSLIMIT (passes, default 2) and TH_ARGON2_MEMLIMIT
 * (bytes, default 19 MiB): OWASP's minimum for argon2id.  Shared by the auth
 * app and the benchmark that measures the hash alone. */
#ifndef TH_PASSWORD_H
#define TH_PASSWORD_H

#include <stddef.h>

#define PASSWORD_HASH_MAX 128 /* >= crypto_pwhash_STRBYTES */

/* Reads the cost and prepares the dummy hash.  0, or -1. */
int password_init(void);
/* Hashes password into out (PASSWORD_HASH_MAX bytes).  0, or -1. */
int password_hash(const char *password, char *out, size_t outsize);
/* 1 when password matches hash, else 0.  hash NULL (unknown user): verifies
 * against a dummy hash of the same cost and returns 0, so an unknown login
 * costs what a wrong password costs. */
int password_verify(const char *hash, const char *password);

#endif
