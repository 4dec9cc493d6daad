/* unreadver: the versions that keep cached answers of GET /api/me/unread and
 * GET /api/notifications exact (fcgi-apps/realtime/unreadcache.c).
 *
 * What those answers depend on changes in two families, each with a version
 * key in Redis:
 *   th:uv:{v}:u<uid>  the user's own state: their read markers, their
 *                     notifications (made or read), their memberships,
 *                     bans, DMs, and the last seq of their DMs;
 *   th:uv:{v}:c<cid>  a community's channels: a message stored in one (its
 *                     last_seq), a channel made, the community changed or
 *                     deleted.
 * An answer is cached with the versions of its user and of every community
 * the user belongs to, read before PostgreSQL was; it is served while all of
 * them are unchanged.
 *
 * Who bumps (always after the commit, before anyone is told):
 *   - the bridge's relay, for every outbox event before it publishes it
 *     (unreadver_add_event): every change above queues an event in its own
 *     transaction (docs/events.md: `channel_activity` for a message stored
 *     in a community channel, `unread` to each member for a DM message,
 *     `notification`, membership events, ...), so a client that saw the
 *     event reads an answer that has it;
 *   - every request that commits a transaction (unreadver_commit(), which
 *     db_commit_or_reply() calls): the triggers of migration 0040 name in the
 *     transaction-local setting townhall.uv every version its statements
 *     made old, whoever they belong to, and those are bumped after the
 *     commit and before the reply, so the next read of the caller or of
 *     anyone their write touched has it without waiting for the relay;
 *   - the bridge, for the senders of a stored batch before their `stored`
 *     receipts.
 * A missing version (Redis flushed, first use) is set to a fresh one (the
 * clock in microseconds), never back to a number an older entry may carry.
 * Every key shares the hash tag {v}, so one EVALSHA bumps or reads a batch in
 * a Redis Cluster too (one slot: docs/scaling.md). */
#ifndef TH_UNREADVER_H
#define TH_UNREADVER_H

#include <stddef.h>
#include <stdint.h>

#include "cache.h"

#define UNREADVER_BATCH_MAX 256 /* keys one EVALSHA carries; more flush early */
#define UNREADVER_KEY_MAX 40

_Static_assert(UNREADVER_BATCH_MAX + 4 <= CACHE_MAX_ARGS, "a batch is one EVALSHA");

struct unreadver_batch {
	int n;
	char key[UNREADVER_BATCH_MAX][UNREADVER_KEY_MAX];
};

/* The key of a user's (kind 'u') or a community's ('c') version. */
void unreadver_key(char out[UNREADVER_KEY_MAX], char kind, int64_t id);

/* Adds a user's key to bump (duplicates in a row are skipped); a full batch is
 * flushed first. */
void unreadver_add_user(struct unreadver_batch *b, int64_t uid);
/* The keys an outbox event's payload (JSON text) changes; nothing for the
 * events no answer depends on (posts, comments, calls, edits). */
void unreadver_add_event(struct unreadver_batch *b, const char *payload);

/* Bumps the keys of a list "u12,c3,..." (the setting townhall.uv that
 * db/migrations/0040_unread_touch.sql fills in a transaction). */
void unreadver_bump_list(const char *list);

/* db_commit() for a transaction of a request: first reads the versions its
 * statements made old (townhall.uv), then commits, then bumps them, so the
 * next read of anyone it touched has it.  0, or -1 when the transaction did
 * not commit (the read failing counts: rolled back; db_last_err() says why). */
int unreadver_commit(void);

/* Bumps every key of the batch in one EVALSHA and empties it.  A batch Redis
 * did not take is bumped key by key through vcache (logged, kept and tried
 * again: lib/vcache.h); until then a cached answer may be stale for at most
 * its TTL. */
void unreadver_flush(struct unreadver_batch *b);

/* The current versions of keys[0..n-1] joined by ',' into out (size bytes),
 * a missing one set fresh.  0, or -1 (Redis unreachable, out too small). */
int unreadver_read(const char *const *keys, int n, char *out, size_t size);

#endif
