/* ratelimit: fixed-window counters in Redis, shared by all workers and hosts.
 *
 * A window opens with the first hit on a key and lasts window_s; the count
 * and the window's remaining time come back in one round trip (a Lua script,
 * so the INCR and its expiry are atomic and the key stays in one slot for
 * Redis Cluster).  Redis is required: when it is down the caller answers 503. */
#ifndef TH_RATELIMIT_H
#define TH_RATELIMIT_H

#include "http.h"

struct rl_state {
	long long count;        /* hits in the current window */
	long retry_after_s;     /* seconds until the window ends (>= 1) */
};

/* Counts one hit on key.  0, or -1 when Redis is unavailable. */
int rl_hit(const char *key, long window_s, struct rl_state *st);
/* Reads key without counting.  0, or -1 when Redis is unavailable. */
int rl_peek(const char *key, struct rl_state *st);

/* Replies 429 rate_limited with Retry-After from st. */
void rl_reply_limited(struct http_req *req, const struct rl_state *st);

#endif
