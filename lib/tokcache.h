/* tokcache: the broker's cache of verified access tokens.
 *
 * An ES256 verify costs ~90 us (~11k/s per core): 17,000 clients of a dead
 * edge reconnecting at once would hold the broker thread for seconds.  They
 * reconnect with the token they had, so each CONNECT after the first costs a
 * SHA-256 of the token and a lookup here instead.
 *
 * Keyed by the SHA-256 of the whole token (a token that differs in any byte
 * is another key; the digest, not the token, is kept: 64 bytes an entry).
 * An entry lives until the token's exp; the revocation check runs on every
 * call, cached or not, so a logout still refuses at once.  Bounded: sets of
 * 4 entries, a full set replaces the entry that expires first.  Only tokens
 * that verified are cached: a flood of bad tokens costs a verify each. */
#ifndef TH_TOKCACHE_H
#define TH_TOKCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "token.h"

/* 1 revoked, 0 live, -1 cannot decide (lib/revoke's revoke_check). */
typedef int (*tokcache_revoked_fn)(int64_t session_id);

/* entries: rounded up to a power of two (at least 4, at most 1<<22).
 * revoked: the revocation check of every call.  -1 when out of memory. */
int tokcache_init(size_t entries, tokcache_revoked_fn revoked);
void tokcache_close(void);

/* token_verify() with the cache: TH_OK and *out; TH_EUNAUTHORIZED for an
 * invalid, expired or revoked token; TH_EUNAVAILABLE when revocation cannot
 * be decided. */
enum th_err tokcache_verify(const char *token, size_t len, struct token_claims *out);

struct tokcache_stats {
	unsigned long hits, misses, evictions;
	size_t entries, used;
};
void tokcache_stats(struct tokcache_stats *out);

#endif
