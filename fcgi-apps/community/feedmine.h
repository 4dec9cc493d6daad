/* feedmine: the caller's my_reactions in cached feed entries (feedcache.c).
 *
 * An entry's JSON is shared by every caller, with "my_reactions":[] in each
 * post, in the order of the entry's ids line.  A mine entry holds one
 * caller's reactions to the posts of one entry: "<ids>\n" then one
 * "<post_id>\t<JSON array of emoji>\n" per post the caller reacted to (an
 * empty list is "<ids>\n", never a missing key); its ids say which entry it
 * was made for.  A reply is the shared JSON with the caller's arrays spliced
 * into the empty ones, bytes copied, never parsed as JSON.
 *
 * An entry that does not match its ids (fewer or more my_reactions:[] than
 * ids, an id twice) is malformed: not spliced, reported to the caller, who
 * refills it from PostgreSQL. */
#ifndef TH_FEEDMINE_H
#define TH_FEEDMINE_H

#include <stddef.h>

#include "posts.h"

/* A page holds at most PAGE_MAX posts; a mine entry one line per post. */
#define FEEDMINE_MAX_ROWS 100

/* True when s (n bytes) is a comma-separated list of decimal ids, or empty. */
int feedmine_ids_ok(const char *s, size_t n);

/* True when entry ("<ids>\n<json>", len bytes) holds one my_reactions:[]
 * per id. */
int feedmine_shape_ok(const char *entry, size_t len);

/* Replies 200 with json (jlen bytes: the shared part of an entry, for the
 * posts of ids_csv) and the caller's my_reactions, from mine (a cached mine
 * entry, mlen bytes, may be NULL) when it was made for these ids, else from
 * PostgreSQL: then stored under mine_key unless it is "" (mine_key names a
 * fill, so the read goes to the primary; otherwise posts_read_role()).  With
 * checked (json is a worker's copy whose shape was checked) and no
 * reactions, json is sent as it is.  An anonymous caller gets json with
 * every my_reactions empty.
 * Returns 0 when it replied (200, or an error: 503 from PostgreSQL, 500 out
 * of memory); -1 when json or the mine entry does not match ids_csv: nothing
 * was replied, the caller decides. */
int feedmine_reply(struct http_req *req, const char *mine_key, const char *ids_csv,
		   const char *json, size_t jlen, const char *mine, size_t mlen, int checked);

#endif
