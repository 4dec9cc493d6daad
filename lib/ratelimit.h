/* ratelimit: fixed-window counters in Redis, shared by all workers and hosts.
 *
 * A window opens with the first hit on a key and lasts window_s; the count
 * and the window's remaining time come back in one round trip (a Lua script,
 * so the INCR and its expiry are atomic and the key stays in one slot for
 * Redis Cluster).  Redis is required: when it is down the caller answers 503. */
#ifndef TH_RATELIMIT_H
#define TH_RATELIMIT_H

struct rl_state {
	long long count;    /* hits in the current window */
	long retry_after_s; /* seconds until the window ends (>= 1) */
};

/* Counts one hit on key.  0, or -1 when Redis is unavailable. */
int rl_hit(const char *key, long window_s, struct rl_state *st);
/* Reads key without counting.  0, or -1 when Redis is unavailable. */
int rl_peek(const char *key, struct rl_state *st);

/* rl_take: a token bucket (GCRA) in Redis, for limits stated as a rate with
 * a burst ("10/s, burst 30"): key holds the bucket's theoretical arrival
 * time in ms (Redis TIME), so every worker, host and the broker plugin that
 * take from one key share one budget.  Takes n tokens (n >= 1) of one every
 * interval_ms, at most burst in a row.  force: take them even when that
 * overdraws the bucket (used to book hits already let through, e.g. the
 * plugin's batched MQTT publishes), so later takers wait longer.
 * Returns 1 when taken, 0 when refused (nothing taken; st->retry_after_s
 * says when n tokens will be there), -1 when Redis is unavailable.  On 0 and
 * 1, st->count is the whole tokens left afterwards (negative: overdrawn). */
int rl_take(const char *key, long interval_ms, long burst, long n, int force, struct rl_state *st);

#endif
