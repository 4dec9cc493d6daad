/* access: who may read or act in a channel.  A channel's community decides,
 * with the same rules as the community app (API.md: private communities are
 * invisible to non-members, banned users may not act, roles rank). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "log.h"
#include "realtime.h"

static enum rt_role role_parse(const char *s)
{
	static const char *const names[] = {NULL, "member", "moderator", "admin", "owner"};

	for (int i = RT_MEMBER; i <= RT_OWNER; i++)
		if (strcmp(s, names[i]) == 0)
			return (enum rt_role)i;
	return RT_NONE;
}

const char *rt_id_text(char buf[24], int64_t id)
{
	snprintf(buf, 24, "%lld", (long long)id);
	return buf;
}

static int hex_ok(char ch)
{
	return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F');
}

int rt_uuid_ok(const char *s, size_t n)
{
	if (!s || n != RT_UUID_LEN)
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return 0;
		} else if (!hex_ok(s[i])) {
			return 0;
		}
	}
	return 1;
}



int channel_load(struct http_req *req, int64_t channel_id, struct rt_channel *ch)
{
	char chid[24], uid[24];
	const char *params[] = {rt_id_text(chid, channel_id), rt_id_text(uid, req->user_id)};
	struct db_res *r;

	memset(ch, 0, sizeof(*ch));
	r = db_exec_or_reply(req, DB_PRIMARY,
			     "SELECT ch.community_id, c.visibility, m.role, b.user_id IS NOT NULL "
			     "FROM channels ch JOIN communities c ON c.id = ch.community_id "
			     "LEFT JOIN memberships m ON m.community_id = c.id AND m.user_id = $2 "
			     "LEFT JOIN bans b ON b.community_id = c.id AND b.user_id = $2 "
			     "WHERE ch.id = $1",
			     2, params);
	if (!r)
		return -1;
	if (db_res_rows(r) == 1) {
		ch->id = channel_id;
		ch->community_id = strtoll(db_res_get(r, 0, 0), NULL, 10);
		ch->is_public = strcmp(db_res_get(r, 0, 1), "public") == 0;
		ch->my_role = role_parse(db_res_get(r, 0, 2));
		ch->banned = strcmp(db_res_get(r, 0, 3), "t") == 0;
	}
	db_res_free(r);
	return 0;
}

int channel_check(struct http_req *req, const struct rt_channel *ch, enum rt_role need,
		  const char *what)
{
	char msg[48];

	if (ch->id == 0 || (!ch->is_public && ch->my_role == RT_NONE)) {
		snprintf(msg, sizeof(msg), "no such %s", what);
		http_reply_error(req, TH_ENOTFOUND, msg, NULL);
		return -1;
	}
	if (need == RT_NONE)
		return 0;
	if (req->user_id == 0) {
		http_reply_error(req, TH_EUNAUTHORIZED, "sign in first", NULL);
		http_set_header(req, "WWW-Authenticate", "Bearer");
		return -1;
	}
	if (ch->banned) {
		http_reply_error(req, TH_EBANNED, "you are banned from this community", NULL);
		return -1;
	}
	if (ch->my_role < need) {
		http_reply_error(req, TH_EFORBIDDEN,
				 need == RT_MEMBER ? "join the community first"
						   : "your role does not allow this", NULL);
		return -1;
	}
	return 0;
}

int channel_access(struct http_req *req, int64_t channel_id, enum rt_role need,
		   struct rt_channel *ch)
{
	if (channel_load(req, channel_id, ch) < 0)
		return -1;
	return channel_check(req, ch, need, "channel");
}
