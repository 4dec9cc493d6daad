/* access: who may read or act in a channel.  A channel's community decides,
 * by the rules of lib/policy.c (API.md: private communities are invisible to
 * non-members, banned users may not act, roles rank); a DM's members do, by
 * the DM rule beside them (channel_access() in
 * db/migrations/0018_dms_reads.sql, policy_read_channel()). */
#include <json-c/json.h>
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
			     "SELECT " POLICY_CHANNEL_COLS ", array_to_string(a.members, ',') "
			     "FROM channel_access($2, $1) a",
			     2, params);
	if (!r)
		return -1;
	if (db_res_rows(r) == 1) {
		const char *p = db_res_get(r, 0, POLICY_CHANNEL_NCOLS);
		char *end;

		ch->id = channel_id;
		policy_read_channel(r, 0, 0, &ch->cm);
		while (ch->cm.dm && *p && ch->nmembers < RT_DM_MAX) {
			int64_t v = strtoll(p, &end, 10);

			if (end == p)
				break;
			ch->members[ch->nmembers++] = v;
			p = *end == ',' ? end + 1 : end;
		}
	}
	return 0;
}

void channel_event_inbox(const struct rt_channel *ch, struct json_object *ev)
{
	struct json_object *to;

	if (!ch->cm.dm || !ev)
		return;
	to = json_object_new_array();
	if (!to)
		return;
	for (int i = 0; i < ch->nmembers; i++)
		json_object_array_add(to, json_object_new_int64(ch->members[i]));
	json_object_object_add(ev, "inbox", to);
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
