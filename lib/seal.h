/* seal: secrets at rest that the server must read back (a TOTP secret: the
 * server computes codes from it, so it cannot be stored as a hash).  A dump
 * of the database alone then gives nothing: the key lives in a file beside
 * the other keys, never in PostgreSQL.
 *
 * A sealed blob is 1 version byte, a random 24-byte nonce and the
 * XChaCha20-Poly1305 (libsodium, IETF AEAD) ciphertext with its 16-byte tag.
 * The associated data binds a blob to the row it belongs to ("totp:42"), so
 * a blob copied into another account's row does not open there.
 *
 * The key: TH_SEAL_KEY_FILE (default $TH_VAR_DIR/keys/seal.key, which
 * scripts/stack creates: 32 random bytes as hex), at least 32 bytes of
 * content, hashed (BLAKE2b) into the AEAD key. */
#ifndef TH_SEAL_H
#define TH_SEAL_H

#include <stddef.h>
#include <sys/types.h>

#define SEAL_VERSION 1
#define SEAL_OVERHEAD (1 + 24 + 16)

/* Reads the key; 0, or -1 with the reason on stderr (a process that needs
 * the key stops at start-up, like with its other keys). */
int seal_init(void);

/* Seals in (n bytes) for the row named ad into out (cap >= n +
 * SEAL_OVERHEAD): the blob's length, or -1 (no key, cap too small). */
ssize_t seal_close(const char *ad, const unsigned char *in, size_t n, unsigned char *out,
		   size_t cap);

/* Opens a blob sealed for ad into out (cap bytes): the secret's length, or
 * -1 when it is not a blob of ours, was changed, was sealed for another row
 * or with another key, or does not fit. */
ssize_t seal_open(const char *ad, const unsigned char *in, size_t n, unsigned char *out,
		  size_t cap);

#endif
