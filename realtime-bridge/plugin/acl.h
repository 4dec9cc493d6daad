/* acl: answers what topic_decide() asks, from the Redis membership mirror
 * (lib/mirror.h) and the call participants set
 * th:call:<call>:participants, with a bounded in-process cache.  Community
 * questions are decided by lib/policy.h's policy_decide() on the caller's
 * role, ban and the community's visibility: the rule the apps apply, from
 * the mirror or, when it is missing, from the apps' own SQL function
 * community_access().  A DM's chat/ and typing/ topics are its members'
 * (th:dm:<channel>, or channel_access() of migration 0018), and a member
 * another member blocked ("muted") may subscribe but not publish.
 *
 * An answer from the mirror is kept while the mirror's generation stays
 * what it was before the question (acl_set_generation, once a second from
 * mwatch.c: it moves when the mirror is rebuilt or its server fails over)
 * and no change the apps logged in th:mirror:log names it (mlog.c, once a
 * second too: acl_forget_change), at most TH_MQTT_ACL_GEN_TTL_S (default
 * 600, at most 3600) seconds: a removal or ban takes effect within about a
 * second on every delivery, a broadcast to 100,000 subscribers does not ask
 * Redis 100,000 times, and joins elsewhere do not make it ask again.
 * When the generation is unknown (Redis out, mirror missing: PostgreSQL
 * answers), positive answers live at most TH_MQTT_ACL_TTL_MS (default and
 * maximum 5 s) and negative ones 1 s.  A lookup that fails or exceeds the
 * cache module's timeout is not cached and refuses: when the plugin cannot
 * decide, it says no. */
#ifndef TH_ACL_H
#define TH_ACL_H

#include <stdint.h>

#include "topic.h"

void acl_init(long ttl_ms, long gen_ttl_s);
void acl_close(void);

/* The mirror's generation as last read (its marker and th:mirror:gen,
 * hashed; never 0), or 0 when unknown: answers tagged with another one are
 * asked again. */
void acl_set_generation(uint64_t tag);

/* A change the apps logged in th:mirror:log (lib/mirror.h, read by
 * mlog.c): the answers it made old are forgotten.  -1 when it asks to
 * forget every answer (the caller moves the generation). */
int acl_forget_change(const char *what, int64_t a, int64_t b);

/* 1 when uid is allowed what d needs, 0 otherwise (including "cannot
 * decide"). */
int acl_allowed(const struct acl_decision *d, int64_t uid);

struct modrule;
/* The chat rules (lib/modrule.h) uid's publish on channel ch obeys: its
 * community's, or none (modrule_default) for a DM, a moderator and above,
 * or a site admin (th:admins); from the mirror (th:community:<cid> slow,
 * maxlen, links), cached like every answer here (a change reaches the
 * plugin with the generation, about a second), or PostgreSQL when the
 * mirror is missing.  0, or -1 when it cannot tell (refuse). */
int acl_chat_rules(int64_t ch, int64_t uid, struct modrule *m);

/* The communities of uid (for presence): fills ids (up to max), returns the
 * count, or -1 when Redis cannot tell. */
int acl_user_communities(int64_t uid, int64_t *ids, int max);

/* Lookups served from the cache / from Redis, for tests and metrics. */
extern unsigned long acl_hits, acl_misses;

#endif
