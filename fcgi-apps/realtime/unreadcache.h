/* unreadcache: exact cached answers of GET /api/me/unread and the first page
 * of GET /api/notifications (unreadcache.c says how they stay exact).
 *
 *   if (unreadcache_serve(req, name))        the cached answer was sent
 *           return;
 *   unreadcache_begin(req, name, 1, &fill);  versions read before PostgreSQL
 *   ... the route answers from PostgreSQL ...
 *   unreadcache_end(req, &fill);             a 200 answer is stored
 *
 * name: "u<uid>" or "n<uid>:<limit>:<0|1>" (under UNREADCACHE_NAME_MAX). */
#ifndef TH_UNREADCACHE_H
#define TH_UNREADCACHE_H

#include "http.h"

#define UNREADCACHE_NAME_MAX 64

struct unreadcache_fill {
	int ok; /* begin read the versions: end may store */
	char name[UNREADCACHE_NAME_MAX];
	char *versions; /* in the request's arena */
	char *cids;
};

/* 1 when the cached answer for name was current and was replied. */
int unreadcache_serve(struct http_req *req, const char *name);
/* Reads the versions the answer will be stored under: the caller's, and
 * with communities those of every community they belong to.  0 when the
 * answer is not to be stored (Redis unreachable, too many communities, the
 * cache off: TH_UNREAD_CACHE_TTL=0); the route answers the same either way. */
int unreadcache_begin(struct http_req *req, const char *name, int communities,
		      struct unreadcache_fill *f);
/* Stores the route's answer when begin succeeded and it is a 200. */
void unreadcache_end(struct http_req *req, const struct unreadcache_fill *f);

#endif
