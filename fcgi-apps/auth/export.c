/* export: GET /api/auth/me/export (API.md, v1.1: Account lifecycle).
 *
 * One JSON document of everything the account wrote and owns:
 *   {"profile": {...}, "posts": [...], "comments": [...], "messages": [...],
 *    "media": [...], "memberships": [...], "dms": [...], "blocks": [...],
 *    "reactions": [...], "post_edits": [...], "message_edits": [...],
 *    "reports": [...], "push_subscriptions": [...]}
 * written as it is read (http_stream_begin): each list is read in keyset
 * pages of EXPORT_PAGE rows, PostgreSQL making each item's JSON text, and
 * every page is written out and freed before the next is read, so a worker
 * holds one page whatever the account's size.  The pages are read in one
 * REPEATABLE READ READ ONLY transaction: the document is one snapshot.
 * Once the head is sent an error can no longer be replied: the body stops
 * short and is no valid JSON (logged), which a client cannot mistake for a
 * whole export.  Media items carry signed links (lib/mediaurl) valid for the
 * configured TTL.  Expensive, so budgeted: TH_RL_EXPORT_MAX per account per
 * TH_RL_EXPORT_WINDOW (2 an hour), then 429 with Retry-After. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "config.h"
#include "ids.h"
#include "log.h"
#include "mediaurl.h"
#include "reply.h"
#include "user.h"

#define EXPORT_PAGE 500
#define TS(c) TH_TIME_SQL(c)

/* One list of the document.  sql: $1 the user, $2 the last key seen (text),
 * $3 the page size; rows (key, json text[, media id, public, kind]) in key
 * order. */
struct export_part {
	const char *name;
	const char *first_key;
	int is_media;
	const char *sql;
};

static const struct export_part parts[] = {
	{"posts", "0", 0,
	 "SELECT p.id, json_build_object('id', p.id, 'community_id', p.community_id, 'title', "
	 "p.title, 'body', p.body, 'media_ids', p.media_ids, 'created_at', " TS(
		 "p.created_at") ", "
				 "'edited_at', " TS("p.edited_at") ")::text FROM posts p WHERE "
								   "p.author_id = $1 "
								   "AND p.id > $2::bigint ORDER BY "
								   "p.id LIMIT $3"},
	{"comments", "0", 0,
	 "SELECT c.id, json_build_object('id', c.id, 'post_id', c.post_id, 'parent_id', "
	 "c.parent_id, 'body', c.body, 'created_at', " TS("c.created_at") ", 'edited_at', " TS(
		 "c.edited_at") ")::text FROM comments c WHERE c.author_id = $1 AND c.id > "
				"$2::bigint "
				"ORDER BY c.id LIMIT $3"},
	{"messages", "00000000-0000-0000-0000-000000000000", 0,
	 "SELECT m.id, json_build_object('id', m.id, 'channel_id', m.channel_id, 'seq', m.seq, "
	 "'body', m.body, 'reply_to', m.reply_to, 'created_at', " TS(
		 "m.created_at") ", "
				 "'edited_at', " TS("m.edited_at") ", 'deleted_at', " TS(
					 "m.deleted_at") ")::text "
							 "FROM messages m WHERE m.sender_id = $1 "
							 "AND m.id > $2::uuid ORDER BY m.id LIMIT "
							 "$3"},
	{"media", "00000000-0000-0000-0000-000000000000", 1,
	 "SELECT md.id, json_build_object('id', md.id, 'community_id', md.community_id, 'kind', "
	 "md.kind, 'mime', md.mime, 'size', md.size, 'sha256', md.sha256, 'width', md.width, "
	 "'height', md.height, 'filename', md.filename, 'created_at', " TS(
		 "md.created_at") ")::text, "
				  "md.id, md.community_id IS NULL OR mc.visibility = 'public', "
				  "md.kind "
				  "FROM media md LEFT JOIN communities mc ON mc.id = "
				  "md.community_id "
				  "WHERE md.owner_id = $1 AND md.id > $2::uuid ORDER BY md.id "
				  "LIMIT $3"},
	{"memberships", "0", 0,
	 "SELECT m.community_id, json_build_object('community_id', m.community_id, 'slug', "
	 "c.slug, 'name', c.name, 'role', m.role, 'notify_level', m.notify_level, 'joined_at', " TS(
		 "m.joined_at") ")::text FROM memberships m JOIN communities c ON c.id = "
				"m.community_id WHERE m.user_id = $1 AND m.community_id > "
				"$2::bigint "
				"ORDER BY m.community_id LIMIT $3"},
	{"dms", "0", 0,
	 "SELECT d.channel_id, json_build_object('channel_id', d.channel_id, 'group', ch.pair_lo "
	 "IS NULL, 'joined_at', " TS(
		 "d.joined_at") ", 'members', (SELECT json_agg(o.user_id "
				"ORDER BY o.user_id) FROM dm_members o WHERE "
				"o.channel_id = d.channel_id))::text "
				"FROM dm_members d JOIN channels ch ON ch.id = d.channel_id WHERE "
				"d.user_id = $1 AND "
				"d.channel_id > $2::bigint ORDER BY d.channel_id LIMIT $3"},
	{"blocks", "0", 0,
	 "SELECT b.blocked_id, json_build_object('user_id', b.blocked_id, 'created_at', " TS(
		 "b.created_at") ")::text FROM blocks b WHERE b.blocker_id = $1 AND b.blocked_id > "
				 "$2::bigint ORDER BY b.blocked_id LIMIT $3"},
	/* keyed "<post id>:<emoji>" (an emoji is at most 32 bytes: the key fits
	 * 64); compared in the "C" collation, where no two emoji are equal */
	{"reactions", "0:", 0,
	 "SELECT r.post_id || ':' || r.emoji, json_build_object('post_id', r.post_id, 'emoji', "
	 "r.emoji, 'created_at', " TS(
		 "r.created_at") ")::text FROM reactions r WHERE r.user_id = "
				 "$1 AND (r.post_id, r.emoji COLLATE \"C\") > "
				 "(split_part($2, ':', 1)::bigint, "
				 "substr($2, strpos($2, ':') + 1) COLLATE \"C\") "
				 "ORDER BY r.post_id, r.emoji COLLATE \"C\" LIMIT $3"},
	/* the earlier versions of the account's own posts and messages */
	{"post_edits", "0", 0,
	 "SELECT e.id, json_build_object('post_id', e.post_id, 'title', e.title, 'body', e.body, "
	 "'written_at', " TS("e.written_at") ", 'replaced_at', " TS(
		 "e.replaced_at") ")::text FROM post_edits e JOIN posts p ON p.id = e.post_id "
				  "WHERE p.author_id = $1 AND e.id > $2::bigint ORDER BY e.id "
				  "LIMIT $3"},
	{"message_edits", "0", 0,
	 "SELECT e.id, json_build_object('message_id', e.message_id, 'body', e.body, "
	 "'written_at', " TS("e.written_at") ", 'replaced_at', " TS(
		 "e.replaced_at") ")::text FROM message_edits e JOIN messages m ON m.id = "
				  "e.message_id WHERE m.sender_id = $1 AND e.id > $2::bigint ORDER "
				  "BY "
				  "e.id LIMIT $3"},
	/* what the account reported: the reporter's own words and the outcome
	 * it was told, not the moderators' notes */
	{"reports", "0", 0,
	 "SELECT rp.id, json_build_object('id', rp.id, 'community_id', rp.community_id, "
	 "'target_type', rp.target_type, 'target_id', rp.target_id, 'reason', rp.reason, 'note', "
	 "rp.note, 'status', rp.status, 'resolution', rp.resolution, 'created_at', " TS(
		 "rp.created_at") ", 'resolved_at', " TS("rp.resolved_at") ")::text FROM reports "
									   "rp "
									   "WHERE rp.reporter_id = "
									   "$1 AND rp.id > "
									   "$2::bigint ORDER BY "
									   "rp.id LIMIT $3"},
	{"push_subscriptions", "0", 0,
	 "SELECT s.id, json_build_object('id', s.id, 'endpoint', s.endpoint, 'created_at', " TS(
		 "s.created_at") ")::text FROM push_subscriptions s WHERE s.user_id = $1 AND s.id "
				 "> "
				 "$2::bigint ORDER BY s.id LIMIT $3"},
};

static const char profile_sql[] =
	"SELECT json_build_object('id', u.id, 'username', u.username, 'display_name', "
	"u.display_name, 'email', u.email, 'email_verified', u.email_verified_at IS NOT NULL, "
	"'totp_enabled', u.totp_enabled_at IS NOT NULL, 'created_at', " TS(
		"u.created_at") ")::text "
				"FROM users u WHERE u.id = $1";

static int export_puts(struct http_req *req, const char *s)
{
	return http_stream_write(req, s, strlen(s));
}

/* A media item: its JSON with "variants" {name: signed link} added. */
static int export_media_item(struct http_req *req, const struct db_res *r, int row)
{
	static const char *const names[] = {"original", "thumb", "medium"};
	const char *json = db_res_get(r, row, 1), *id = db_res_get(r, row, 2);
	int pub = strcmp(db_res_get(r, row, 3), "t") == 0;
	int nvar = strcmp(db_res_get(r, row, 4), "image") == 0 ? 3 : 1;
	size_t len = strlen(json);
	char url[512];
	int k;

	/* json_build_object's text ends with '}' */
	if (len < 2 || http_stream_write(req, json, len - 1) < 0 ||
	    export_puts(req, ", \"variants\": {") < 0)
		return -1;
	for (k = 0; k < nvar; k++) {
		const char *u = mediaurl_write(url, sizeof(url), id, names[k], pub);

		if ((k && export_puts(req, ", ") < 0) || export_puts(req, "\"") < 0 ||
		    export_puts(req, names[k]) < 0 || export_puts(req, "\": ") < 0)
			return -1;
		/* the URL is ours: path characters and hex, nothing to escape */
		if (u ? (export_puts(req, "\"") < 0 || export_puts(req, u) < 0 ||
			 export_puts(req, "\"") < 0)
		      : export_puts(req, "null") < 0)
			return -1;
	}
	return export_puts(req, "}}");
}

/* Writes ", \"name\": [items]" page by page.  0, or -1 (database or client). */
static int export_part(struct http_req *req, const struct export_part *p, const char *uid)
{
	char key[64], limit[16];
	const char *params[] = {uid, key, limit};
	struct db_res *r = NULL;
	int i, n, first = 1, rc = -1;

	snprintf(key, sizeof(key), "%s", p->first_key);
	snprintf(limit, sizeof(limit), "%d", EXPORT_PAGE);
	if (export_puts(req, ", \"") < 0 || export_puts(req, p->name) < 0 ||
	    export_puts(req, "\": [") < 0)
		goto out;
	do {
		r = db_exec(DB_PRIMARY, p->sql, 3, params);
		if (!r) {
			log_error("export: %s of user %s: %s", p->name, uid, db_last_error());
			goto out;
		}
		n = db_res_rows(r);
		for (i = 0; i < n; i++) {
			if (!first && export_puts(req, ",") < 0)
				goto out;
			first = 0;
			if (p->is_media ? export_media_item(req, r, i) < 0
					: export_puts(req, db_res_get(r, i, 1)) < 0)
				goto out;
		}
		if (n > 0)
			snprintf(key, sizeof(key), "%s", db_res_get(r, n - 1, 0));
		db_res_free(r);
		r = NULL;
	} while (n == EXPORT_PAGE);
	rc = export_puts(req, "]");
out:
	db_res_free(r);
	return rc;
}

void export_handler(struct http_req *req)
{
	static int url_ready;
	char uid[24];
	const char *p[] = {ids_text(uid, req->user_id)};
	struct db_res *r;
	size_t i;
	int ok = 0;

	if (acct_budget_or_reply(req, "export", uid, acct_limits.export_max,
				 acct_limits.export_window_s) < 0)
		return;
	if (!url_ready) {
		if (mediaurl_init() < 0) {
			http_reply_error(req, TH_EINTERNAL, "cannot sign media links", NULL);
			return;
		}
		url_ready = 1;
	}
	/* one snapshot for every page: the document is consistent */
	if (db_begin_snapshot_or_reply(req) < 0)
		return;
	r = db_exec_or_reply(req, DB_PRIMARY, profile_sql, 1, p);
	if (!r)
		return;
	if (db_res_rows(r) != 1) {
		http_reply_error(req, TH_EUNAUTHORIZED, "account no longer exists", NULL);
		return;
	}
	http_set_header(req, "Cache-Control", "no-store");
	http_set_header(req, "Content-Disposition",
			"attachment; filename=\"townhall-export.json\"");
	if (http_stream_begin(req, 200, "application/json") < 0 ||
	    export_puts(req, "{\"profile\": ") < 0 || export_puts(req, db_res_get(r, 0, 0)) < 0)
		goto out;
	for (i = 0; i < sizeof(parts) / sizeof(parts[0]); i++)
		if (export_part(req, &parts[i], uid) < 0)
			goto out;
	if (export_puts(req, "}\n") < 0)
		goto out;
	ok = 1;
out:
	db_rollback();
	if (!ok)
		log_error("export: user %s: the document was cut short", uid);
	else
		log_info("audit: user %s exported the account", uid);
}
