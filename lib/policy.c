/* policy: who may read or act in a community and in what lives in it. */
#include "policy.h"

#include <stdlib.h>
#include <string.h>

static const char *const role_names[] = {NULL, "member", "moderator", "admin", "owner"};

const char *role_name(enum role r)
{
	return (r > ROLE_NONE && r <= ROLE_OWNER) ? role_names[r] : NULL;
}

enum role role_parse(const char *s)
{
	for (int i = ROLE_MEMBER; i <= ROLE_OWNER; i++)
		if (s && strcmp(s, role_names[i]) == 0)
			return (enum role)i;
	return ROLE_NONE;
}

void policy_read(const struct db_res *r, int row, int col, int64_t community_id,
		 struct community *c)
{
	memset(c, 0, sizeof(*c));
	if (db_res_isnull(r, row, col))
		return;
	c->id = community_id;
	c->is_public = strcmp(db_res_get(r, row, col), "t") == 0;
	c->owner_id = strtoll(db_res_get(r, row, col + 1), NULL, 10);
	c->my_role = role_parse(db_res_get(r, row, col + 2));
	c->banned = strcmp(db_res_get(r, row, col + 3), "t") == 0;
}

void policy_read_channel(const struct db_res *r, int row, int col, struct community *c)
{
	int64_t cid = db_res_isnull(r, row, col) ? 0 : strtoll(db_res_get(r, row, col), NULL, 10);

	if (strcmp(db_res_get(r, row, col + 1), "dm") != 0) {
		policy_read(r, row, col + 2, cid, c);
		return;
	}
	memset(c, 0, sizeof(*c));
	c->dm = 1;
	c->my_role = role_parse(db_res_get(r, row, col + 2 + 2));
	c->muted = strcmp(db_res_get(r, row, col + 2 + POLICY_NCOLS), "t") == 0;
}

int policy_readable(const struct community *c)
{
	if (c->dm) /* members only, whatever else */
		return c->my_role != ROLE_NONE;
	return c->id != 0 && (c->is_public || (c->my_role != ROLE_NONE && !c->banned));
}

enum th_err policy_decide(const struct community *c, int64_t uid, enum role need)
{
	if (!policy_readable(c))
		return TH_ENOTFOUND;
	if (need == ROLE_NONE)
		return TH_OK;
	if (uid == 0)
		return TH_EUNAUTHORIZED;
	if (c->banned)
		return TH_EBANNED;
	if (c->muted)
		return TH_EFORBIDDEN;
	if (c->my_role < need)
		return TH_EFORBIDDEN;
	return TH_OK;
}
