/* acl: answers what topic_decide() asks, from the Redis membership mirror
 * (lib/mirror.h) and the call participants set
 * th:call:<call>:participants, with a bounded in-process cache.
 *
 * Positive answers live at most TH_MQTT_ACL_TTL_MS (default and maximum
 * 5 s), so a removal or ban takes effect within 5 s on every delivery;
 * negative answers live 1 s, so a fresh join is seen quickly.  A Redis
 * lookup that fails or exceeds the cache module's timeout is not cached and
 * refuses: when the plugin cannot decide, it says no. */
#ifndef TH_ACL_H
#define TH_ACL_H

#include <stdint.h>

#include "topic.h"

void acl_init(long ttl_ms);
void acl_close(void);

/* 1 when uid is allowed what d needs, 0 otherwise (including "cannot
 * decide"). */
int acl_allowed(const struct acl_decision *d, int64_t uid);

/* The communities of uid (for presence): fills ids (up to max), returns the
 * count, or -1 when Redis cannot tell. */
int acl_user_communities(int64_t uid, int64_t *ids, int max);

/* Lookups served from the cache / from Redis, for tests and metrics. */
extern unsigned long acl_hits, acl_misses;

#endif
