/* mirror: the membership data the broker plugin reads, kept in Redis.
 *
 * PostgreSQL is the truth; these keys are a copy the apps update after each
 * committed change, and scripts/mirror-rebuild recreates from PostgreSQL
 * (after a Redis flush, or if an update was lost while Redis was down).
 *   th:community:<cid>         HASH  visibility -> public|private; slow,
 *                                    maxlen, links -> the chat rules of
 *                                    lib/modrule.h (absent: the defaults)
 *   th:members:<cid>           HASH  <uid> -> owner|admin|moderator|member
 *   th:banned:<cid>            SET   <uid>
 *   th:user:<uid>:communities  SET   <cid>
 *   th:channel:<chid>          STRING <cid>, or "dm" for a DM channel
 *   th:dm:<chid>               HASH  <uid> -> member|muted (a DM's members;
 *                                    muted: another member blocked them, they
 *                                    may read but not publish)
 *   th:admins                  SET   <uid> of site admins (users.is_admin)
 *   th:mirror:log              STREAM one entry {k, a, b} a change, written
 *                                    after its keys: which cached answers of
 *                                    the broker plugin it made old (k one of
 *                                    MIRROR_LOG_*), about the last 10,000
 * Every call is best effort: a failure is logged (and counted in the pool's
 * metrics as mirror_errors_total), never returned to the client, whose
 * change is already committed.  After such a failure the next successful
 * write deletes the marker th:mirror:epoch, which makes the broker plugin
 * rebuild the whole mirror (scripts/mirror-rebuild --if-missing); the
 * plugin does the same when Redis lost everything (restart, flush). */
#ifndef TH_MIRROR_H
#define TH_MIRROR_H

#include <stdint.h>

/* INCR th:mirror:gen: every mirror_* call does it before its writes; other
 * writers of mirrored keys (the call participants of fcgi-apps/realtime)
 * call it before theirs, so a concurrent rebuild cannot overwrite them.
 * The mirror_* calls do it again after their writes: the broker plugin keeps
 * a membership answer while the generation it read before asking stays
 * (realtime-bridge/plugin/acl.h), so a write that lands after its question
 * must move the generation after landing. */
void mirror_gen_bump(void);

/* The kinds of th:mirror:log entries (the plugin's mlog.c reads them):
 * a member's standing in community a (role, ban) of user b; community a's
 * visibility and chat rules; channel a's community; user b in DM a;
 * anything (the plugin forgets every answer). */
#define MIRROR_LOG_MEMBER "member"
#define MIRROR_LOG_COMMUNITY "community"
#define MIRROR_LOG_CHANNEL "channel"
#define MIRROR_LOG_DM "dm"
#define MIRROR_LOG_ALL "all"
struct modrule;
/* The community's visibility and its chat rules (slow mode, content limits:
 * the broker applies them within the generation's bound, about a second);
 * NULL leaves that part as it is.  A new community gets both (its rules
 * the defaults), so th:community:<cid> always holds all four fields, as a
 * rebuild writes them. */
void mirror_community(int64_t cid, const char *visibility, const struct modrule *rules);
void mirror_member(int64_t cid, int64_t uid, const char *role);
void mirror_member_gone(int64_t cid, int64_t uid);
void mirror_ban(int64_t cid, int64_t uid);
void mirror_unban(int64_t cid, int64_t uid);
void mirror_channel(int64_t chid, int64_t cid);
/* A DM channel: th:channel:<chid> = dm. */
void mirror_dm_channel(int64_t chid);
/* A member of DM chid and their state (muted: may read, not publish), or
 * (mirror_dm_member_gone) their leaving. */
void mirror_dm_member(int64_t chid, int64_t uid, int muted);
void mirror_dm_member_gone(int64_t chid, int64_t uid);
/* Removes a deleted community: its hash, members (and their user sets),
 * bans; channel keys of chids[0..n). */
void mirror_community_gone(int64_t cid, const int64_t *chids, int n);

#endif
