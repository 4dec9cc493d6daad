/* notify: PUT /api/communities/:id/notify {level} — how much a member hears
 * from a community (API.md v1.1 "Mentions and notifications"):
 *   all       every new post, and mentions and replies;
 *   mentions  mentions and replies (the default);
 *   none      nothing from this community's posts, comments and messages
 *             (role changes and bans still reach the member).
 * The triggers of db/migrations/0024_notifications.sql read the level. */
#include <json-c/json.h>
#include <string.h>

#include "community.h"
#include "ids.h"
#include "jh.h"
#include "reply.h"
#include "userlimits.h"

void notify_level_put(struct http_req *req)
{
	static const char *const levels[] = {"all", "mentions", "none"};
	struct community c;
	const char *level;
	char cid[24], uid[24];
	struct db_res *r;
	struct json_object *o;
	size_t i;

	if (community_access_param(req, "id", ROLE_MEMBER, &c) < 0 ||
	    jh_string_or_400(req, req->json, "level", 1, 16, JH_REQUIRED, &level) < 0)
		return;
	for (i = 0; i < sizeof(levels) / sizeof(levels[0]); i++)
		if (strcmp(level, levels[i]) == 0)
			break;
	if (i == sizeof(levels) / sizeof(levels[0])) {
		http_reply_error(req, TH_EVALIDATION, "level must be all, mentions or none",
				 "level");
		return;
	}
	if (limits_take_or_reply(req, LIMIT_SETTING) < 0)
		return;
	{
		const char *params[] = {ids_text(cid, c.id), ids_text(uid, req->user_id), level};

		r = db_exec_or_reply(req, DB_PRIMARY,
				     "UPDATE memberships SET notify_level = $3 "
				     "WHERE community_id = $1 AND user_id = $2",
				     3, params);
	}
	/* the membership may be gone since community_access_param() */
	if (!r || db_one_row_changed_or_404(req, r, "you are not a member") < 0)
		return;
	o = json_object_new_object();
	if (!o) {
		http_reply_error(req, TH_EINTERNAL, "out of memory", NULL);
		return;
	}
	json_object_object_add(o, "community_id", json_object_new_int64(c.id));
	json_object_object_add(o, "level", json_object_new_string(level));
	http_reply_json(req, 200, o);
}
