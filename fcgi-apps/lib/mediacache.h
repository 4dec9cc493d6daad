/* mediacache: the Redis copy of a medium's immutable row, as far as the apps
 * other than media must know it: its key, and how to forget entries.
 *
 * th:media:<uuid> (STRING, with a TTL) holds the facts of one media row that
 * never change after the upload (owner, community, kind, mime, size, sha256,
 * filename, variants); the media app writes it on the first download that
 * misses it and reads it on every download instead of PostgreSQL (format and
 * rules: fcgi-apps/media/rowcache.c).  Whoever deletes media rows deletes
 * their entries INSIDE the deleting transaction, after the rows are deleted
 * (so they are locked) and before COMMIT: a download that misses the entry
 * meanwhile must lock the row FOR KEY SHARE to write it again, waits for the
 * commit, and finds no row.  When Redis cannot confirm the deletion, the
 * caller rolls back and answers 503: an entry left behind would be served by
 * every worker after Redis came back. */
#ifndef TH_MEDIACACHE_H
#define TH_MEDIACACHE_H

#include <stddef.h>

#define MEDIACACHE_PREFIX "th:media:"
/* "th:media:" + a 36-char UUID + NUL */
#define MEDIACACHE_KEY_MAX 48

/* The key of medium id (a UUID string) into buf; buf, or NULL when it does
 * not fit (an id that is no UUID). */
char *mediacache_key(char *buf, size_t size, const char *id);

/* Deletes the entries of the n media ids (UUID strings; n may be 0).
 * 0 when Redis confirmed every DEL (an absent entry counts as deleted), -1
 * when it could not be reached or refused one (cache_last_error() says why). */
int mediacache_forget(const char *const *ids, size_t n);

#endif
