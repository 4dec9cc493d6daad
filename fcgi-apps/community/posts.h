/* posts.h: what posts.c, comments.c, reactions.c, search.c and feedcache.c
 * share (internal to the community app; community.h holds the handlers).
 *
 * Which database handle a read uses (the read-your-writes rule):
 *   - access checks (community_access, and the post or comment lookup that
 *     finds the community): DB_PRIMARY, for reads and writes alike — one
 *     primary key lookup each, and a caller must see their own new post,
 *     join or role change at once;
 *   - the write itself and what it reads inside its transaction: DB_PRIMARY;
 *   - cache fills (first feed page, single post, the caller's reactions to
 *     them, the read verdict of feedcache.c): DB_PRIMARY, so an entry
 *     stored under a version is never older than the write that made that
 *     version (a lagging replica would cache stale data under the new
 *     version for a whole TTL);
 *   - every other read: ryw_read_role() (lib/ryw.h), which is DB_READ unless
 *     the caller wrote something in the last TH_RYW_SECONDS (a marker in
 *     Redis set by ryw_wrote() after each commit), or Redis cannot tell:
 *     then DB_PRIMARY.  Without a replica (TH_DB_READ_CONNINFO unset)
 *     DB_READ is the primary and no marker is consulted. */
#ifndef TH_POSTS_H
#define TH_POSTS_H

#include <stdint.h>

#include "community.h"
#include "db.h"
#include "http.h"
#include "ryw.h"

struct json_object;

/* The columns post_json() reads, from posts p JOIN users u.  "my_reactions"
 * is not among them: it is per caller and filled by posts_fill_mine().  The
 * reaction counts are kept on the row by a trigger (migration 0007). */
#define POST_COLS                                                                            \
	"p.id, p.community_id, " USER_COLS                                                   \
	", p.title, p.body, p.comment_count, " TH_TIME_SQL("p.created_at") ", " TH_TIME_SQL( \
		"p.edited_at") ", "                                                          \
			       "p.reaction_counts::text, " POST_MEDIA_SQL
/* The post's media, in media_ids order, as a JSON array; post_json() adds
 * the variant URLs (signed for private media: lib/mediaurl).  A function of
 * the database (migration 0008), called only for a post with media: a
 * subquery here cost every page the set-up of its plan, media or not. */
#define POST_MEDIA_SQL \
	"CASE WHEN cardinality(p.media_ids) = 0 THEN '[]' ELSE post_media_json(p.media_ids) END"
#define POST_NCOLS 13

/* The post of row (my_reactions: []).  NULL when out of memory. */
struct json_object *post_json(const struct db_res *r, int row);

struct page;
/* Rows of POST_COLS (then any key columns) as a page: the posts of the first
 * pg->limit rows as "items", and "next_cursor" made of key_cols (nkeys column
 * numbers, in cursor order, at most 2) of the last of them when there was one
 * more row.  *ids_csv: those posts' ids, comma-separated, in the request's
 * arena.  Returns the page (the request's: jh_own), or NULL with a 500
 * replied. */
struct json_object *posts_page_or_500(struct http_req *req, struct db_res *r, const struct page *pg,
				      int nkeys, const int *key_cols, char **ids_csv);

/* A post as its permission checks need it. */
struct post_ref {
	int64_t id;
	int64_t community_id;
	int64_t author_id;
};

/* Loads the post whose id is the path parameter `param` (from handle role)
 * and checks the caller against its community with community_access(need).
 * Replies and returns -1: 404 for a bad or unknown id, or a post of a private
 * community the caller cannot see; the errors of community_access otherwise. */
int post_access_or_reply(struct http_req *req, const char *param, enum db_role role, enum role need,
			 struct community *c, struct post_ref *p);

/* The caller's reactions on the posts of ids_pg (a Postgres array literal
 * "{1,2}"): rows (post_id, JSON array of emoji), only for posts that have
 * some.  Call only for an authenticated caller.  NULL: an error was replied. */
struct db_res *posts_mine_query(struct http_req *req, const char *ids_pg);
/* Sets "my_reactions" from those rows in `posts`: one post object, or an
 * object whose "items" is an array of posts, or an array of posts. */
void posts_mine_apply(const struct db_res *mine, struct json_object *posts);
/* Both: nothing for an anonymous caller.  0, or -1 with the error replied. */
int posts_fill_mine(struct http_req *req, const char *ids_pg, struct json_object *posts);

/* Transactions on the primary that reply 503/500 themselves: 0 or -1. */

/* Read-your-writes (see above). */

/* feedcache.c: the cached read path.
 *
 * feedcache_read() fetches, in one round trip, the community's versions, the
 * entry for `what` ("feed" with item = limit, or "post" with item = post id),
 * the caller's cached reactions to its posts and, with check_access, the
 * cached verdict whether the caller may read the community (PostgreSQL
 * decides when there is none, and the verdict is stored).  Returns 1 when it
 * replied: a hit (200, my_reactions filled for the caller), 404 for a
 * community the caller may not read, or an error.  Returns 0 on a miss the
 * caller fills: fill holds the names the entry and the caller's reactions
 * must be stored under (fill->key[0] == '\0' when Redis is unavailable: then
 * nothing is stored). */
#define FEEDCACHE_KEY 128
struct feedcache_fill {
	char key[FEEDCACHE_KEY];
	char mine_key[FEEDCACHE_KEY];
	char name[FEEDCACHE_KEY]; /* key without its version: the worker's copy */
	char ver[24];             /* the feed version in key */
};
int feedcache_read(struct http_req *req, const char *what, int64_t cid, int64_t item,
		   int check_access, struct feedcache_fill *fill);
/* The end of a miss: stores o (the shared reply, my_reactions: [] in each
 * of the posts of ids_csv "1,2", in that order; may be "") under fill->key,
 * fills in the caller's reactions and replies 200.  o stays the request's
 * (jh_own); the reply is its serialization. */
void feedcache_fill_reply(struct http_req *req, const struct feedcache_fill *fill,
			  const char *ids_csv, struct json_object *o);
/* SET key to the bytes a (alen) then b (blen) with the cache TTL, for
 * feedcache.c and its parts (feedmine.c); the joined value is made in ar
 * (the request's arena).  Best effort: a failure is logged and only costs
 * the next reader a miss. */
void feedcache_store(struct arena *ar, const char *key, const char *a, size_t alen, const char *b,
		     size_t blen);

#endif
