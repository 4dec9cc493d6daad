/* The community app's internal interfaces (never included by another app). */
#ifndef TH_COMMUNITY_H
#define TH_COMMUNITY_H

#include <stdint.h>

#include "db.h"
#include "http.h"
#include "ids.h"
#include "policy.h"
#include "user.h"

/* posts: 40000 chars, each up to 12 bytes as a JSON \u escape pair, + title */
#define COMMUNITY_BODY_LIMIT (512 * 1024)

/* Loads community `id` for the caller and checks they may act with role
 * `need` (ROLE_NONE: read).  Replies and returns -1 when not:
 *   404 when it does not exist, or is private and the caller is no member;
 *   403 banned when the caller is banned and need > ROLE_NONE;
 *   401 when need > ROLE_NONE and the caller is anonymous;
 *   403 forbidden when the caller's role is below need. */
int community_access(struct http_req *req, int64_t id, enum role need, struct community *c);
/* Loads community `id` and the caller's standing in it, with no visibility
 * rule: 404 only when it does not exist.  For the one route where API.md
 * wants 403 for a private community (join). */
int community_load(struct http_req *req, int64_t id, struct community *c);
/* Same, with the id from the path parameter `param`. */
int community_access_param(struct http_req *req, const char *param, enum role need,
			   struct community *c);

/* The columns community_json() reads, from communities c, plus my_role from
 * a LEFT JOIN memberships m (m.role). */
#define COMMUNITY_COLS                                                    \
	"c.id, c.slug, c.name, c.description, c.visibility, c.owner_id, " \
	"c.member_count, " TH_TIME_SQL(                                   \
		"c.created_at") ", m.role, "                              \
				"c.slow_mode_seconds, c.max_message_length, c.links_allowed"
#define COMMUNITY_NCOLS 12
struct json_object *community_json(const struct db_res *r, int row, int col);

/* A keyset page of rows of one community: access check with `need`,
 * ?limit/?cursor (one integer key, ascending from 0), then sql with $1 the
 * community id, $2 the cursor key and $3 limit + 1, whose column 0 is the
 * key; fn builds each item (ctx: the community's int64_t id).  Replies. */
struct db_res;
typedef struct json_object *(*community_row_fn)(const struct db_res *r, int row, void *ctx);
void community_page(struct http_req *req, enum role need, enum db_role db, const char *sql,
		    community_row_fn fn);


/* Feed cache (feedcache.c): bumps the community's feed version so every
 * cached page and post of it becomes unreachable at once (after a commit
 * that changed its posts, comments or reactions); the access version, so
 * every cached read verdict of it does (after a commit that changed its
 * visibility, a membership or a ban).  Call before replying. */
void feedcache_bump(int64_t community_id);
void feedcache_bump_access(int64_t community_id);

/* callexit.c: the user leaves the community's ongoing calls, in the
 * current transaction of a leave, removal or ban (call_left / call_ended
 * queued).  Returns the number of calls left (0: none), or -1 when replied.
 * After the commit, callexit_mirror() updates the Redis sets of the
 * broker's signal ACL.  x holds results of the request (they die with it). */
struct callexit {
	int64_t user_id;
	struct db_res *left;  /* (call id, channel id) of each call left; with
				 * whole: (call id, user id) of each participant */
	struct db_res *ended; /* the same, of each call that ended */
	int whole;            /* callexit_community() filled it */
};
int callexit_leave(struct http_req *req, int64_t community_id, int64_t uid, struct callexit *x);
void callexit_mirror(struct http_req *req, const struct callexit *x);
/* The community is about to be deleted (its calls go by cascade): reads the
 * participants of its ongoing calls in the current transaction (the number,
 * or -1 when replied); after the commit callexit_mirror_community() deletes
 * their Redis sets. */
int callexit_community(struct http_req *req, int64_t community_id, struct callexit *x);
void callexit_mirror_community(struct http_req *req, const struct callexit *x);

/* Removals a moderator's report resolution shares with the delete routes,
 * in the caller's transaction (events queued; the modlog entry is the
 * database's, 0033).  post_remove: 1 removed, 0 already gone, -1 replied.
 * comment_remove: the comments removed with its replies (0: gone), -1
 * replied. */
int post_remove(struct http_req *req, int64_t cid, int64_t post_id);
long long comment_remove(struct http_req *req, int64_t cid, int64_t post_id, int64_t id);

/* Bans (members.c): ban_check replies 404/403 unless the caller outranks
 * the user here; ban_apply bans in the caller's transaction (membership
 * removed, events queued, the user's calls left: x); after the commit,
 * ban_applied updates the caches and the broker's mirror. */
int ban_check(struct http_req *req, const struct community *cm, int64_t uid);
int ban_apply(struct http_req *req, int64_t cid, int64_t uid, const char *reason,
	      struct callexit *x);
void ban_applied(struct http_req *req, int64_t cid, int64_t uid, const struct callexit *x);

/* handlers */
void communities_create(struct http_req *req);
void communities_list(struct http_req *req);
void communities_get(struct http_req *req);
void communities_patch(struct http_req *req);
void communities_delete(struct http_req *req);

void members_join(struct http_req *req);
void members_leave(struct http_req *req);
void members_list(struct http_req *req);
void members_put(struct http_req *req);
void members_delete(struct http_req *req);
void bans_create(struct http_req *req);
void bans_delete(struct http_req *req);
void bans_list(struct http_req *req);

void channels_create(struct http_req *req);
void channels_list(struct http_req *req);

/* notify.c: PUT /api/communities/:id/notify */
void notify_level_put(struct http_req *req);

void posts_create(struct http_req *req);
void posts_feed(struct http_req *req);
void posts_get(struct http_req *req);
void posts_patch(struct http_req *req);
/* history.c: GET /api/posts/:id/history */
void posts_history(struct http_req *req);
void posts_delete(struct http_req *req);
void comments_create(struct http_req *req);
void comments_list(struct http_req *req);
void comments_delete(struct http_req *req);
void reactions_put(struct http_req *req);
void reactions_delete(struct http_req *req);
void search_posts(struct http_req *req);
/* reports.c: POST /api/reports, GET /api/communities/:id/reports,
 * POST /api/reports/:id/resolve, GET /api/admin/reports */
void reports_create(struct http_req *req);
void reports_list(struct http_req *req);
void reports_resolve(struct http_req *req);
void reports_admin_list(struct http_req *req);
/* modlog.c: GET /api/communities/:id/modlog, GET /api/admin/modlog;
 * modlog_is_admin: 1 when the caller is a site admin, 0 not, -1 replied;
 * modlog_admin_or_403: 0 for a site admin, else -1 replied (403) */
void modlog_list(struct http_req *req);
void modlog_admin_list(struct http_req *req);
int modlog_is_admin(struct http_req *req);
int modlog_admin_or_403(struct http_req *req);


#endif
