/* posts: create, feed, get, edit, delete; the post object and the one place
 * that loads a post with its community's access check.
 *
 * Reads and writes use the handles posts.h describes (read-your-writes).
 * Every write runs in one transaction with its event (events_emit), commits,
 * then bumps the community's feed version before replying, so the caller's
 * next read of the feed or the post cannot be served a stale cache entry.
 *
 * The feed is keyset-paginated on posts.id, newest first, through
 * posts_feed_idx (community_id, id DESC).  EXPLAIN ANALYZE with 100,000
 * posts in 100 communities (the users join is a hash or a loop, by size):
 *   Limit (actual rows=21)
 *     -> Nested Loop
 *          -> Index Scan using posts_feed_idx on posts p (actual rows=21)
 *               Index Cond: ((community_id = 50) AND (id < ...))
 *          -> ... users u
 *   Execution Time: 0.072 ms
 * (no Sort node: the index yields the order). */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "events.h"
#include "jh.h"
#include "userlimits.h"
#include "log.h"
#include "mediaurl.h"
#include "page.h"
#include "posts.h"
#include "reply.h"

#define POST_TITLE_MAX 300
#define POST_BODY_MAX 40000
#define POST_MEDIA_MAX 10

/* ---- shared with comments.c, reactions.c, search.c, feedcache.c ---- */

/* The media array of POST_MEDIA_SQL (arr, parsed), completed as API.md's
 * media objects: "variants" with their URLs (images get thumb and medium),
 * "public" dropped. */
static void media_complete(struct json_object *arr)
{
	static const char *const names[] = {"original", "thumb", "medium"};
	struct json_object *m, *v, *variants;
	char url[256];
	size_t i;

	for (i = 0; i < json_object_array_length(arr); i++) {
		const char *id;
		int pub, nvar;

		m = json_object_array_get_idx(arr, i);
		id = json_object_object_get_ex(m, "id", &v) ? json_object_get_string(v) : "";
		pub = json_object_object_get_ex(m, "public", &v) && json_object_get_boolean(v);
		nvar = json_object_object_get_ex(m, "kind", &v) &&
				       strcmp(json_object_get_string(v), "image") == 0
			       ? 3
			       : 1;
		json_object_object_del(m, "public");
		if (json_object_object_get_ex(m, "width", &v) && !v)
			json_object_object_del(m, "width");
		if (json_object_object_get_ex(m, "height", &v) && !v)
			json_object_object_del(m, "height");
		variants = json_object_new_object();
		for (int k = 0; k < nvar; k++) {
			const char *u = mediaurl_write(url, sizeof(url), id, names[k], pub);

			json_object_object_add(variants, names[k],
					       u ? json_object_new_string(u) : NULL);
		}
		json_object_object_add(m, "variants", variants);
	}
}

struct json_object *post_json(const struct db_res *r, int row)
{
	struct json_object *o = json_object_new_object();
	struct json_object *reactions, *media;

	if (!o)
		return NULL;
	reactions = jh_parse(db_res_get(r, row, 11), strlen(db_res_get(r, row, 11)));
	media = jh_parse(db_res_get(r, row, 12), strlen(db_res_get(r, row, 12)));
	json_object_object_add(o, "id", user_json_int(db_res_get(r, row, 0)));
	json_object_object_add(o, "community_id", user_json_int(db_res_get(r, row, 1)));
	json_object_object_add(o, "author", user_json(r, row, 2));
	json_object_object_add(o, "title", json_object_new_string(db_res_get(r, row, 6)));
	json_object_object_add(o, "body", json_object_new_string(db_res_get(r, row, 7)));
	/* o owns what it is given: a value that is not an array is replaced
	 * (and put) by [] */
	json_object_object_add(o, "media", media);
	if (json_object_is_type(media, json_type_array))
		media_complete(media);
	else
		json_object_object_add(o, "media", json_object_new_array());
	json_object_object_add(o, "comment_count", user_json_int(db_res_get(r, row, 8)));
	json_object_object_add(o, "reactions", reactions ? reactions : json_object_new_object());
	json_object_object_add(o, "my_reactions", json_object_new_array());
	json_object_object_add(o, "created_at", json_object_new_string(db_res_get(r, row, 9)));
	json_object_object_add(o, "edited_at",
			       db_res_isnull(r, row, 10)
				       ? NULL
				       : json_object_new_string(db_res_get(r, row, 10)));
	return o;
}

int post_access_or_reply(struct http_req *req, const char *param, enum db_role role, enum role need,
			 struct community *c, struct post_ref *p)
{
	char id[24];
	const char *params[] = {id};
	struct db_res *r;

	memset(p, 0, sizeof(*p));
	if (jh_id_or_404(req, http_param(req, param), &p->id) < 0)
		return -1;
	ids_text(id, p->id);
	r = db_exec_or_reply(req, role, "SELECT community_id, author_id FROM posts WHERE id = $1",
			     1, params);
	if (!r)
		return -1;
	if (db_res_rows(r) != 1) {
		http_reply_error(req, TH_ENOTFOUND, "no such post", NULL);
		return -1;
	}
	p->community_id = strtoll(db_res_get(r, 0, 0), NULL, 10);
	p->author_id = strtoll(db_res_get(r, 0, 1), NULL, 10);
	if (community_access(req, p->community_id, need, c) == 0)
		return 0;
	/* a post of a private community the caller cannot see: the same 404 as
	 * for no post at all, so the message does not tell that it exists */
	if (req->resp.status == 404)
		http_reply_error(req, TH_ENOTFOUND, "no such post", NULL);
	return -1;
}

struct db_res *posts_mine_query(struct http_req *req, const char *ids_pg)
{
	char uid[24];
	const char *params[] = {ids_text(uid, req->user_id), ids_pg};

	return db_exec_or_reply(req, ryw_read_role(req->user_id),
				"SELECT post_id, json_agg(emoji ORDER BY emoji)::text FROM "
				"reactions "
				"WHERE user_id = $1 AND post_id = ANY($2::bigint[]) GROUP BY "
				"post_id",
				2, params);
}

static void apply_one(const struct db_res *mine, struct json_object *post)
{
	struct json_object *idv, *arr;
	int64_t id;
	int i;

	if (!json_object_object_get_ex(post, "id", &idv))
		return;
	id = json_object_get_int64(idv);
	for (i = 0; i < db_res_rows(mine); i++) {
		if (strtoll(db_res_get(mine, i, 0), NULL, 10) != id)
			continue;
		arr = jh_parse(db_res_get(mine, i, 1), strlen(db_res_get(mine, i, 1)));
		if (arr)
			json_object_object_add(post, "my_reactions", arr);
		return;
	}
}

void posts_mine_apply(const struct db_res *mine, struct json_object *posts)
{
	struct json_object *items = posts;
	size_t i, n;

	if (json_object_is_type(posts, json_type_object) &&
	    !json_object_object_get_ex(posts, "items", &items)) {
		apply_one(mine, posts);
		return;
	}
	if (!json_object_is_type(items, json_type_array))
		return;
	n = json_object_array_length(items);
	for (i = 0; i < n; i++)
		apply_one(mine, json_object_array_get_idx(items, i));
}

int posts_fill_mine(struct http_req *req, const char *ids_pg, struct json_object *posts)
{
	struct db_res *mine;

	if (!req->user_id || strcmp(ids_pg, "{}") == 0)
		return 0;
	mine = posts_mine_query(req, ids_pg);
	if (!mine)
		return -1;
	posts_mine_apply(mine, posts);
	return 0;
}


/* ---- helpers of this file ---- */

/* media_ids (optional): up to 10 UUID strings -> a Postgres array literal
 * "{...}" (safe: only hex digits, dashes and commas).  -1 with 400 replied. */
static int media_ids_or_400(struct http_req *req, const char **out)
{
	struct json_object *a, *e;
	size_t i, n;
	char *buf, *w;

	*out = "{}";
	if (!json_object_object_get_ex(req->json, "media_ids", &a) || !a)
		return 0;
	if (!json_object_is_type(a, json_type_array) ||
	    (n = json_object_array_length(a)) > POST_MEDIA_MAX) {
		http_reply_error(req, TH_EVALIDATION,
				 "media_ids must be an array of at most 10 media ids", "media_ids");
		return -1;
	}
	buf = arena_alloc(req->arena, n * (IDS_UUID_LEN + 1) + 3);
	if (!buf) {
		http_reply_error(req, TH_EINTERNAL, "out of memory", NULL);
		return -1;
	}
	w = buf;
	*w++ = '{';
	for (i = 0; i < n; i++) {
		e = json_object_array_get_idx(a, i);
		if (!json_object_is_type(e, json_type_string) ||
		    !ids_uuid_ok(json_object_get_string(e),
				 (size_t)json_object_get_string_len(e))) {
			http_reply_error(req, TH_EVALIDATION, "media_ids must hold UUID strings",
					 "media_ids");
			return -1;
		}
		if (i)
			*w++ = ',';
		memcpy(w, json_object_get_string(e), IDS_UUID_LEN);
		w += IDS_UUID_LEN;
	}
	*w++ = '}';
	*w = '\0';
	*out = buf;
	return 0;
}

/* Replies with the post of id, read from role, my_reactions filled. */
static void post_reply(struct http_req *req, int status, enum db_role role, int64_t id)
{
	char pid[24];
	const char *params[] = {ids_text(pid, id)};
	struct db_res *r;
	struct json_object *o;
	char *ids_pg;

	r = db_exec_or_reply(req, role,
			     "SELECT " POST_COLS
			     " FROM posts p LEFT JOIN users u ON u.id = p.author_id "
			     "WHERE p.id = $1",
			     1, params);
	if (!r)
		return;
	if (db_res_rows(r) != 1) {
		http_reply_error(req, TH_ENOTFOUND, "no such post", NULL);
		return;
	}
	o = jh_own(req, post_json(r, 0));
	ids_pg = arena_printf(req->arena, "{%s}", pid);
	if (!o || !ids_pg || posts_fill_mine(req, ids_pg, o) < 0) {
		if (!o || !ids_pg)
			http_reply_error(req, TH_EINTERNAL, "out of memory", NULL);
		return;
	}
	http_reply_json(req, status, json_object_get(o));
}

/* ---- handlers ---- */

void posts_create(struct http_req *req)
{
	struct community c;
	const char *title, *body, *media;
	char cid[24], uid[24];
	struct db_res *r;
	int64_t id;

	if (community_access_param(req, "id", ROLE_MEMBER, &c) < 0)
		return;
	if (jh_string_or_400(req, req->json, "title", 0, POST_TITLE_MAX, 0, &title) < 0 ||
	    jh_string_or_400(req, req->json, "body", 1, POST_BODY_MAX, JH_REQUIRED | JH_MULTILINE,
			     &body) < 0 ||
	    media_ids_or_400(req, &media) < 0 || limits_take_or_reply(req, LIMIT_POST) < 0)
		return;
	{
		const char *params[] = {ids_text(cid, c.id), ids_text(uid, req->user_id),
					title ? title : "", body, media};

		/* a post shows only media its author uploaded, as profile media or
		 * into this community (a private community's media must not leak
		 * into a post elsewhere): every id must name one of them (counted
		 * once however often it is listed) */
		r = db_exec_or_reply(req, DB_PRIMARY,
				     "SELECT (SELECT count(*) FROM media WHERE id = "
				     "ANY($1::uuid[]) "
				     "AND owner_id = $2 AND (community_id IS NULL OR community_id "
				     "= $3)) "
				     "= cardinality(ARRAY(SELECT DISTINCT unnest($1::uuid[])))",
				     3, (const char *const[]){media, uid, cid});
		if (!r)
			return;
		if (strcmp(db_res_get(r, 0, 0), "t") != 0) {
			http_reply_error(req, TH_EVALIDATION,
					 "media_ids must name media you uploaded here or to your "
					 "profile",
					 "media_ids");
			return;
		}
		if (db_begin_or_reply(req) < 0)
			return;
		r = db_exec_or_reply(req, DB_PRIMARY,
				     "INSERT INTO posts (community_id, author_id, title, body, "
				     "media_ids) "
				     "VALUES ($1, $2, $3, $4, $5::uuid[]) RETURNING id",
				     5, params);
	}
	if (!r)
		return;
	id = strtoll(db_res_get(r, 0, 0), NULL, 10);
	if (events_emit(req, "post_created", c.id, "post_id", id, "author_id", req->user_id) < 0 ||
	    db_commit_or_reply(req) < 0)
		return;
	feedcache_bump(c.id);
	ryw_wrote(req->user_id);
	log_info("audit: user %lld created post %lld in community %lld", (long long)req->user_id,
		 (long long)id, (long long)c.id);
	post_reply(req, 201, DB_PRIMARY, id);
}

/* The rows of a post list as a page (contract in posts.h). */
struct json_object *posts_page_or_500(struct http_req *req, struct db_res *r, const struct page *pg,
				      int nkeys, const int *key_cols, char **ids_csv)
{
	int n = db_res_rows(r) > pg->limit ? pg->limit : db_res_rows(r);
	size_t used = 0, cap = (size_t)n * 21 + 1; /* 20 digits and a comma an id */
	struct json_object *items = jh_array(req), *page;
	char *csv = arena_alloc(req->arena, cap), *next = NULL;
	int64_t last[2] = {0, 0}; /* struct page holds two keys at most */

	if (!csv || !items) {
		http_reply_error(req, TH_EINTERNAL, "out of memory", NULL);
		return NULL;
	}
	csv[0] = '\0';
	for (int i = 0; i < n; i++) {
		json_object_array_add(items, post_json(r, i));
		used += (size_t)snprintf(csv + used, cap - used, "%s%s", i ? "," : "",
					 db_res_get(r, i, 0));
		for (int k = 0; k < nkeys && k < 2; k++)
			last[k] = strtoll(db_res_get(r, i, key_cols[k]), NULL, 10);
	}
	if (db_res_rows(r) > pg->limit)
		next = page_cursor(req->arena, nkeys, last);
	*ids_csv = csv;
	page = jh_own(req, page_result(json_object_get(items), next));
	if (!page)
		http_reply_error(req, TH_EINTERNAL, "out of memory", NULL);
	return page;
}

void posts_feed(struct http_req *req)
{
	struct community c;
	struct page pg;
	struct feedcache_fill fill;
	static const int key_cols[] = {0}; /* the cursor: the last post's id */
	char cid[24], *ids_csv;
	const char *params[3];
	enum db_role role;
	struct db_res *r;
	struct json_object *page;

	if (jh_id_or_404(req, http_param(req, "id"), &c.id) < 0)
		return;
	if (page_parse_or_400(req, 1, INT64_MAX, &pg) < 0) {
		/* a community the caller may not read is 404 whatever the query
		 * says (its reply replaces the 400); a readable one keeps the 400 */
		(void)community_access(req, c.id, ROLE_NONE, &c);
		return;
	}
	fill.key[0] = fill.mine_key[0] = '\0';
	if (pg.has_cursor) {
		/* only the first page is cached: deeper pages are rarer and each
		 * cursor would be an entry of its own */
		if (community_access(req, c.id, ROLE_NONE, &c) < 0)
			return;
	} else if (feedcache_read(req, "feed", c.id, pg.limit, 1, &fill) != 0) {
		return; /* replied: a hit, a hidden community, or an error */
	}
	role = fill.key[0] ? DB_PRIMARY : ryw_read_role(req->user_id);
	params[0] = ids_text(cid, c.id);
	params[1] = pg.key_s[0];
	params[2] = pg.limit_s;
	r = db_exec_or_reply(req, role,
			     "SELECT " POST_COLS
			     " FROM posts p LEFT JOIN users u ON u.id = p.author_id "
			     "WHERE p.community_id = $1 AND p.id < $2 "
			     "ORDER BY p.id DESC LIMIT $3",
			     3, params);
	if (!r)
		return;
	page = posts_page_or_500(req, r, &pg, 1, key_cols, &ids_csv);
	if (!page)
		return;
	feedcache_fill_reply(req, &fill, ids_csv, page);
}

void posts_get(struct http_req *req)
{
	struct community c;
	struct post_ref p;
	struct feedcache_fill fill;
	char pid[24];
	const char *params[1];
	struct db_res *r;
	struct json_object *o;

	if (post_access_or_reply(req, "id", DB_PRIMARY, ROLE_NONE, &c, &p) < 0)
		return;
	if (feedcache_read(req, "post", c.id, p.id, 0, &fill) != 0)
		return;
	params[0] = ids_text(pid, p.id);
	r = db_exec_or_reply(req, fill.key[0] ? DB_PRIMARY : ryw_read_role(req->user_id),
			     "SELECT " POST_COLS
			     " FROM posts p LEFT JOIN users u ON u.id = p.author_id "
			     "WHERE p.id = $1",
			     1, params);
	if (!r)
		return;
	if (db_res_rows(r) != 1) {
		http_reply_error(req, TH_ENOTFOUND, "no such post", NULL);
		return;
	}
	o = jh_own(req, post_json(r, 0));
	if (!o) {
		http_reply_error(req, TH_EINTERNAL, "out of memory", NULL);
		return;
	}
	feedcache_fill_reply(req, &fill, pid, o);
}

void posts_patch(struct http_req *req)
{
	struct community c;
	struct post_ref p;
	const char *title, *body;
	char pid[24];
	struct db_res *r;

	if (post_access_or_reply(req, "id", DB_PRIMARY, ROLE_NONE, &c, &p) < 0)
		return;
	if (p.author_id != req->user_id) {
		http_reply_error(req, TH_EFORBIDDEN, "only the author may edit a post", NULL);
		return;
	}
	if (c.banned) {
		http_reply_error(req, TH_EBANNED, "you are banned from this community", NULL);
		return;
	}
	if (jh_string_or_400(req, req->json, "title", 0, POST_TITLE_MAX, 0, &title) < 0 ||
	    jh_string_or_400(req, req->json, "body", 1, POST_BODY_MAX, JH_MULTILINE, &body) < 0)
		return;
	if (!title && !body) {
		http_reply_error(req, TH_EVALIDATION, "give a title or a body to change", NULL);
		return;
	}
	if (limits_take_or_reply(req, LIMIT_EDIT) < 0)
		return;
	{
		const char *params[] = {ids_text(pid, p.id), title, body};

		if (db_begin_or_reply(req) < 0)
			return;
		/* NULL parameters keep the old value */
		r = db_exec_or_reply(req, DB_PRIMARY,
				     "UPDATE posts SET title = COALESCE($2::text, title), "
				     "body = COALESCE($3::text, body), edited_at = now() WHERE id "
				     "= $1",
				     3, params);
	}
	if (!r)
		return;
	/* the post may be deleted since post_access_or_reply() */
	if (db_one_row_changed_or_404(req, r, "no such post") < 0)
		return;
	if (events_emit(req, "post_edited", c.id, "post_id", p.id, "author_id", p.author_id) < 0 ||
	    db_commit_or_reply(req) < 0)
		return;
	feedcache_bump(c.id);
	ryw_wrote(req->user_id);
	log_info("audit: user %lld edited post %lld", (long long)req->user_id, (long long)p.id);
	post_reply(req, 200, DB_PRIMARY, p.id);
}

int post_remove(struct http_req *req, int64_t cid, int64_t post_id)
{
	char pid[24];
	const char *params[] = {ids_text(pid, post_id)};
	struct db_res *r;
	long long n;

	/* comments and reactions go with it (ON DELETE CASCADE) */
	r = db_exec_or_reply(req, DB_PRIMARY, "DELETE FROM posts WHERE id = $1", 1, params);
	if (!r)
		return -1;
	n = db_res_affected(r);
	if (n == 1 && events_emit(req, "post_deleted", cid, "post_id", post_id, "deleted_by",
				  req->user_id) < 0)
		return -1;
	return n == 1;
}

void posts_delete(struct http_req *req)
{
	struct community c;
	struct post_ref p;
	int n;

	if (post_access_or_reply(req, "id", DB_PRIMARY, ROLE_NONE, &c, &p) < 0)
		return;
	/* the author may always take back their own post; others need to be
	 * moderator+ here and not banned */
	if (p.author_id != req->user_id && (c.banned || c.my_role < ROLE_MODERATOR)) {
		http_reply_error(req, c.banned ? TH_EBANNED : TH_EFORBIDDEN,
				 c.banned ? "you are banned from this community"
					  : "only the author or a moderator may delete a post",
				 NULL);
		return;
	}
	if (db_begin_or_reply(req) < 0)
		return;
	n = post_remove(req, c.id, p.id);
	if (n < 0)
		return;
	if (n == 0) {
		db_rollback();
		http_reply_error(req, TH_ENOTFOUND, "no such post", NULL);
		return;
	}
	if (db_commit_or_reply(req) < 0)
		return;
	feedcache_bump(c.id);
	ryw_wrote(req->user_id);
	log_info("audit: user %lld deleted post %lld of user %lld", (long long)req->user_id,
		 (long long)p.id, (long long)p.author_id);
	http_reply_empty(req, 204);
}
