/* channels: create and list a community's chat channels (messages live in
 * the realtime app). */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "community.h"
#include "db.h"
#include "events.h"
#include "jh.h"
#include "mirror.h"
#include "page.h"
#include "reply.h"
#include "userlimits.h"

#define CHANNEL_SQL                                                       \
	"SELECT ch.id, ch.community_id, ch.name, ch.topic, " TH_TIME_SQL( \
		"ch.created_at") " FROM channels ch "

static struct json_object *channel_json(const struct db_res *r, int row)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "id", user_json_int(db_res_get(r, row, 0)));
	/* DMs (kind "dm") are the realtime app's (fcgi-apps/realtime/dms.c) */
	json_object_object_add(o, "kind", json_object_new_string("community"));
	json_object_object_add(o, "community_id", user_json_int(db_res_get(r, row, 1)));
	json_object_object_add(o, "name", json_object_new_string(db_res_get(r, row, 2)));
	json_object_object_add(o, "topic", json_object_new_string(db_res_get(r, row, 3)));
	json_object_object_add(o, "created_at", json_object_new_string(db_res_get(r, row, 4)));
	return o;
}

static int name_valid(const char *s)
{
	size_t n = strlen(s);

	if (n < 1 || n > 64)
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-' ||
		      *s == '_'))
			return 0;
	return 1;
}

void channels_create(struct http_req *req)
{
	struct community cm;
	const char *name, *topic;
	char c[24], chs[24];
	struct db_res *r;
	int64_t chid;

	if (community_access_param(req, "id", ROLE_ADMIN, &cm) < 0 ||
	    jh_string_or_400(req, req->json, "name", 1, 64, JH_REQUIRED, &name) < 0 ||
	    jh_string_or_400(req, req->json, "topic", 0, 500, 0, &topic) < 0)
		return;
	if (!name_valid(name)) {
		http_reply_error(req, TH_EVALIDATION, "name must be 1 to 64 of a-z, 0-9, - and _",
				 "name");
		return;
	}
	if (limits_take_or_reply(req, LIMIT_MANAGE) < 0 || db_begin_or_reply(req) < 0)
		return;
	/* at most limits.channels_max a community, exactly: the community's row
	 * is locked first (FOR NO KEY UPDATE: the KEY SHARE of other writes'
	 * foreign-key checks goes on), so concurrent creations count one after
	 * the other, each in a statement of its own that sees the one before */
	{
		const char *params[] = {ids_text(c, cm.id)};

		r = db_exec_or_reply(req, DB_PRIMARY,
				     "SELECT 1 FROM communities WHERE id = $1 FOR NO KEY UPDATE", 1,
				     params);
		if (!r)
			return;
		if (db_res_rows(r) != 1) { /* deleted since the access check */
			http_reply_error(req, TH_ENOTFOUND, "no such community", NULL);
			db_rollback();
			return;
		}
	}
	{
		char max[24];
		const char *params[] = {c, name, topic ? topic : "",
					ids_text(max, limits.channels_max)};

		r = db_own(req, db_exec(DB_PRIMARY,
					"INSERT INTO channels (community_id, name, topic) "
					"SELECT $1, $2, $3 WHERE (SELECT count(*) FROM channels "
					"WHERE community_id = $1) < $4 "
					"RETURNING id",
					4, params));
	}
	if (!r) {
		if (db_last_err() == TH_ECONFLICT)
			http_reply_error(req, TH_ECONFLICT, "a channel of that name exists",
					 "name");
		else
			http_reply_error(req,
					 db_last_err() == TH_EUNAVAILABLE ? TH_EUNAVAILABLE
									  : TH_EINTERNAL,
					 NULL, NULL);
		db_rollback();
		return;
	}
	if (db_res_rows(r) != 1) {
		char why[80];

		snprintf(why, sizeof(why), "a community holds at most %ld channels",
			 limits.channels_max);
		http_reply_error(req, TH_EVALIDATION, why, NULL);
		db_rollback();
		return;
	}
	chid = strtoll(db_res_get(r, 0, 0), NULL, 10);
	if (events_emit(req, "channel_created", cm.id, "channel_id", chid, NULL, 0) < 0)
		return;
	if (db_commit_or_reply(req) < 0)
		return;
	mirror_channel(chid, cm.id);
	{
		const char *params[] = {ids_text(chs, chid)};

		r = db_exec_or_reply(req, DB_PRIMARY, CHANNEL_SQL "WHERE ch.id = $1", 1, params);
	}
	if (!r)
		return;
	http_reply_json(req, 201, channel_json(r, 0));
}

static struct json_object *channel_row(const struct db_res *r, int row, void *ctx)
{
	(void)ctx;
	return channel_json(r, row);
}

void channels_list(struct http_req *req)
{
	/* oldest first: #general leads */
	community_page(req, ROLE_NONE, DB_PRIMARY,
		       CHANNEL_SQL
		       "WHERE ch.community_id = $1 AND ch.id > $2 ORDER BY ch.id LIMIT $3",
		       channel_row);
}
