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
/* no hash slot freed up within TH_ARGON2_WAIT_MS: the host is overloaded
 * with hashes; callers answer 503 */
#define PASSWORD_BUSY (-2)

/* Reads the cost and prepares the dummy hash.  0, or -1. */
int password_init(void);

/* Optional (the auth app calls it; the in-process benchmark does not):
 * limits the hashes and verifies running at once on this host to
 * TH_ARGON2_CONCURRENCY (default: the online CPUs; 0: no limit), through
 * $var_dir/run/argon2.slots (slots.h), shared by every process that opens it.
 * A caller waits at most TH_ARGON2_WAIT_MS (default 10000) for a slot.
 * Counters argon2_slot_waits_total (had to wait) and argon2_slot_busy_total
 * (gave up) go to the pool's metrics.  var_dir NULL: no limit.  0, or -1. */
int password_limit_init(const char *var_dir);
void password_limit_close(void);

/* Hashes password into out (PASSWORD_HASH_MAX bytes).  0, -1 (failed:
 * memory), or PASSWORD_BUSY. */
int password_hash(const char *password, char *out, size_t outsize);
/* 1 when password matches hash, 0 when not, PASSWORD_BUSY when it could not
 * be checked.  hash NULL (unknown user): verifies against a dummy hash of the
 * same cost, under the same limit, and returns 0, so an unknown login costs
 * what a wrong password costs. */
int password_verify(const char *hash, const char *password);

#endif
