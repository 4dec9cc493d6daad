/* access: who may read or act in a channel.  A channel's community decides,
 * by the rules of lib/policy.c (API.md: private communities are invisible to
 * non-members, banned users may not act, roles rank). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "log.h"
#include "realtime.h"
#include "reply.h"

int channel_load(struct http_req *req, int64_t channel_id, struct rt_channel *ch)
{
	char chid[24], uid[24];
	const char *params[] = {ids_text(chid, channel_id), ids_text(uid, req->user_id)};
	struct db_res *r;

	memset(ch, 0, sizeof(*ch));
	r = db_exec_or_reply(req, DB_PRIMARY,
			     "SELECT ch.community_id, " POLICY_COLS " FROM channels ch "
			     "CROSS JOIN LATERAL community_access($2, ch.community_id) a "
			     "WHERE ch.id = $1",
			     2, params);
	if (!r)
		return -1;
	if (db_res_rows(r) == 1) {
		ch->id = channel_id;
		policy_read(r, 0, 1, strtoll(db_res_get(r, 0, 0), NULL, 10), &ch->cm);
	}
	return 0;
}

int channel_check(struct http_req *req, const struct rt_channel *ch, enum role need,
		  const char *what)
{
	return policy_check_or_reply(req, &ch->cm, need, what);
}

int channel_access(struct http_req *req, int64_t channel_id, enum role need, struct rt_channel *ch)
{
	if (channel_load(req, channel_id, ch) < 0)
		return -1;
	return channel_check(req, ch, need, "channel");
}
