/* policy: the one answer to "may this caller read, write or moderate here?"
 * for a community and what lives in it (channels, posts, comments, messages,
 * calls, media).
 *
 * The facts — the community's visibility and owner, the caller's role and
 * ban — come from one SQL function, community_access(user, community)
 * (db/migrations/0017_community_access.sql), which each app's query joins
 * LATERAL next to the thing it loads (POLICY_COLS, policy_read()).  The
 * rules are here:
 *   read      the community is public, or the caller is a member who is not
 *             banned; else 404 (a private community is invisible);
 *   act       (need >= ROLE_MEMBER) signed in (401), not banned (403
 *             banned), a role of at least need (403 forbidden).
 * A DM channel (no community) follows the same rules with its members as
 * the only readers (role member, nobody above), and a member another member
 * blocked ("muted") may read but not act (403 forbidden; API.md: nobody
 * writes a DM with someone who blocked them).
 * Roles rank owner > admin > moderator > member > none (API.md).
 * A request loads a community and checks the rules with the web library's
 * policy_load() and policy_check_or_reply() (fcgi-apps/lib/reply.h). */
#ifndef TH_POLICY_H
#define TH_POLICY_H

#include <stdint.h>

#include "db.h"
#include "err.h"

enum role { ROLE_NONE = 0, ROLE_MEMBER, ROLE_MODERATOR, ROLE_ADMIN, ROLE_OWNER };

const char *role_name(enum role r);  /* NULL for ROLE_NONE */
enum role role_parse(const char *s); /* ROLE_NONE when unknown, "" or NULL */

/* What a request knows about a community and its caller. */
struct community {
	int64_t id; /* 0: no such community */
	int is_public;
	int64_t owner_id;
	enum role my_role; /* ROLE_NONE for anonymous callers and non-members */
	int banned;        /* the caller is banned here */
	int dm;            /* a DM channel: no community (id 0), members only */
	int muted;         /* DM: another member blocked the caller (may read, not write) */
};

/* The columns policy_read() reads, from LATERAL community_access($u, …) a */
#define POLICY_COLS "a.is_public, a.owner_id, a.role, a.banned"
#define POLICY_NCOLS 4

/* Fills c from row `row`, columns col .. col + POLICY_NCOLS - 1 of r (the
 * community id is the caller's to set).  A row whose columns are null (a
 * LEFT JOIN that found no community) leaves c->id 0. */
void policy_read(const struct db_res *r, int row, int col, int64_t community_id,
		 struct community *c);

/* The columns policy_read_channel() reads, from LATERAL channel_access($u,
 * channel) a (db/migrations/0018_dms_reads.sql): a community channel's
 * community and POLICY_COLS, or a DM's standing. */
#define POLICY_CHANNEL_COLS "a.community_id, a.kind, " POLICY_COLS ", a.muted"
#define POLICY_CHANNEL_NCOLS (POLICY_NCOLS + 3)

/* Fills c from columns col .. col + POLICY_CHANNEL_NCOLS - 1 of row `row`:
 * a community channel as policy_read() does, a DM with dm set, my_role
 * ROLE_MEMBER for a member (ROLE_NONE: not one) and muted. */
void policy_read_channel(const struct db_res *r, int row, int col, struct community *c);

/* The read rule on a loaded community (1: may read). */
int policy_readable(const struct community *c);

/* The rules above as an error: TH_OK, TH_ENOTFOUND, TH_EUNAUTHORIZED,
 * TH_EBANNED or TH_EFORBIDDEN.  uid 0: anonymous. */
enum th_err policy_decide(const struct community *c, int64_t uid, enum role need);

#endif
