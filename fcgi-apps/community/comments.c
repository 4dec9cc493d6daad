/* comments: create (optionally as a reply), list oldest first, delete.
 *
 * posts.comment_count is kept in the transaction of each change.  Both
 * create and delete take the post's row lock first (create by its UPDATE of
 * the count, delete by SELECT ... FOR UPDATE), so a reply cannot slip under a
 * comment while its subtree is being counted and deleted, and the count
 * stays exact.  Reads use the handles posts.h describes. */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "events.h"
#include "jh.h"
#include "userlimits.h"
#include "log.h"
#include "page.h"
#include "posts.h"
#include "reply.h"

#define COMMENT_BODY_MAX 10000

/* The columns comment_json() reads, from comments c JOIN users u. */
#define COMMENT_COLS                               \
	"c.id, c.post_id, c.parent_id, " USER_COLS \
	", c.body, " TH_TIME_SQL("c.created_at") ", " TH_TIME_SQL("c.edited_at")

static struct json_object *comment_json(const struct db_res *r, int row)
{
	struct json_object *o = json_object_new_object();

	if (!o)
		return NULL;
	json_object_object_add(o, "id", user_json_int(db_res_get(r, row, 0)));
	json_object_object_add(o, "post_id", user_json_int(db_res_get(r, row, 1)));
	json_object_object_add(o, "parent_id",
			       db_res_isnull(r, row, 2) ? NULL
							: user_json_int(db_res_get(r, row, 2)));
	json_object_object_add(o, "author", user_json(r, row, 3));
	json_object_object_add(o, "body", json_object_new_string(db_res_get(r, row, 7)));
	json_object_object_add(o, "created_at", json_object_new_string(db_res_get(r, row, 8)));
	json_object_object_add(o, "edited_at",
			       db_res_isnull(r, row, 9)
				       ? NULL
				       : json_object_new_string(db_res_get(r, row, 9)));
	return o;
}

/* the same, as a page_row_fn for page_reply() */
static struct json_object *comment_row(const struct db_res *r, int row, void *ctx)
{
	(void)ctx;
	return comment_json(r, row);
}

void comments_create(struct http_req *req)
{
	struct community c;
	struct post_ref p;
	const char *body;
	bool has_parent;
	int64_t parent = 0, id;
	char pid[24], uid[24], par[24];
	const char *params[4];
	struct db_res *r;
	struct json_object *o;

	if (post_access_or_reply(req, "id", DB_PRIMARY, ROLE_MEMBER, &c, &p) < 0)
		return;
	if (jh_string_or_400(req, req->json, "body", 1, COMMENT_BODY_MAX,
			     JH_REQUIRED | JH_MULTILINE, &body) < 0 ||
	    jh_int_or_400(req, req->json, "parent_id", 1, INT64_MAX, false, &has_parent, &parent) <
		    0 ||
	    limits_take_or_reply(req, LIMIT_COMMENT) < 0)
		return;
	params[0] = ids_text(pid, p.id);
	params[1] = ids_text(uid, req->user_id);
	params[2] = has_parent ? ids_text(par, parent) : NULL;
	params[3] = body;
	if (db_begin_or_reply(req) < 0)
		return;
	/* first: the post's row lock (see the top of the file) */
	r = db_exec_or_reply(req, DB_PRIMARY,
			     "UPDATE posts SET comment_count = comment_count + 1 WHERE id = $1", 1,
			     params);
	if (!r)
		return;
	if (db_one_row_changed_or_404(req, r, "no such post") < 0)
		return;
	if (has_parent) {
		const char *pp[] = {params[2], params[0]};

		/* KEY SHARE: the parent cannot be deleted before we commit */
		r = db_exec_or_reply(req, DB_PRIMARY,
				     "SELECT 1 FROM comments WHERE id = $1 AND post_id = $2 "
				     "FOR KEY SHARE",
				     2, pp);
		if (!r)
			return;
		if (db_res_rows(r) != 1) {
			db_rollback();
			http_reply_error(req, TH_EVALIDATION,
					 "parent_id is not a comment of this post", "parent_id");
			return;
		}
	}
	r = db_exec_or_reply(req, DB_PRIMARY,
			     "WITH c AS (INSERT INTO comments (post_id, author_id, parent_id, "
			     "body) "
			     "VALUES ($1, $2, $3::bigint, $4) RETURNING *) "
			     "SELECT " COMMENT_COLS " FROM c JOIN users u ON u.id = c.author_id",
			     4, params);
	if (!r)
		return;
	id = strtoll(db_res_get(r, 0, 0), NULL, 10);
	o = jh_own(req, comment_json(r, 0));
	if (!o) {
		http_reply_error(req, TH_EINTERNAL, "out of memory", NULL);
		return;
	}
	if (events_emit(req, "comment_created", c.id, "post_id", p.id, "comment_id", id) < 0 ||
	    db_commit_or_reply(req) < 0)
		return;
	feedcache_bump(c.id); /* the post's comment_count changed */
	ryw_wrote(req->user_id);
	log_info("audit: user %lld commented %lld on post %lld", (long long)req->user_id,
		 (long long)id, (long long)p.id);
	http_reply_json(req, 201, json_object_get(o));
}

void comments_list(struct http_req *req)
{
	struct community c;
	struct post_ref p;
	struct page pg;
	char pid[24];
	const char *params[3];
	struct db_res *r;

	if (post_access_or_reply(req, "id", DB_PRIMARY, ROLE_NONE, &c, &p) < 0 ||
	    page_parse_or_400(req, 1, 0, &pg) < 0)
		return;
	params[0] = ids_text(pid, p.id);
	params[1] = pg.key_s[0];
	params[2] = pg.limit_s;
	/* comments_post_idx (post_id, id) serves this without a sort */
	r = db_exec_or_reply(req, ryw_read_role(req->user_id),
			     "SELECT " COMMENT_COLS
			     " FROM comments c LEFT JOIN users u ON u.id = c.author_id "
			     "WHERE c.post_id = $1 AND c.id > $2 ORDER BY c.id LIMIT $3",
			     3, params);
	if (!r)
		return;
	page_reply(req, &pg, r, 0, comment_row, NULL);
}

long long comment_remove(struct http_req *req, int64_t cid, int64_t post_id, int64_t id)
{
	char idt[24], pid[24], nt[24];
	const char *p1[] = {ids_text(pid, post_id)};
	const char *p2[2];
	struct db_res *r;
	long long n;

	r = db_exec_or_reply(req, DB_PRIMARY, "SELECT 1 FROM posts WHERE id = $1 FOR UPDATE", 1,
			     p1);
	if (!r)
		return -1;
	/* the comment and its replies, all levels down: each row deleted here is
	 * one comment less (cascades would delete replies too, but uncounted) */
	p2[0] = ids_text(idt, id);
	p2[1] = pid;
	r = db_exec_or_reply(req, DB_PRIMARY,
			     "WITH RECURSIVE t AS ("
			     "SELECT id FROM comments WHERE id = $1 AND post_id = $2 "
			     "UNION ALL SELECT c.id FROM comments c JOIN t ON c.parent_id = t.id), "
			     "d AS (DELETE FROM comments WHERE id IN (SELECT id FROM t) RETURNING "
			     "1) "
			     "SELECT count(*) FROM d",
			     2, p2);
	if (!r)
		return -1;
	n = strtoll(db_res_get(r, 0, 0), NULL, 10);
	if (n == 0) /* deleted meanwhile, or its post was */
		return 0;
	p2[0] = pid;
	p2[1] = ids_text(nt, n);
	r = db_exec_or_reply(req, DB_PRIMARY,
			     "UPDATE posts SET comment_count = comment_count - $2::integer "
			     "WHERE id = $1",
			     2, p2);
	if (!r ||
	    events_emit(req, "comment_deleted", cid, "post_id", post_id, "comment_id", id) < 0)
		return -1;
	return n;
}

void comments_delete(struct http_req *req)
{
	struct community c;
	int64_t id, post_id, author_id, cid;
	char idt[24];
	const char *p1[1];
	struct db_res *r;
	long long n;

	if (jh_id_or_404(req, http_param(req, "id"), &id) < 0)
		return;
	p1[0] = ids_text(idt, id);
	r = db_exec_or_reply(req, DB_PRIMARY,
			     "SELECT c.post_id, c.author_id, p.community_id FROM comments c "
			     "JOIN posts p ON p.id = c.post_id WHERE c.id = $1",
			     1, p1);
	if (!r)
		return;
	if (db_res_rows(r) != 1) {
		http_reply_error(req, TH_ENOTFOUND, "no such comment", NULL);
		return;
	}
	post_id = strtoll(db_res_get(r, 0, 0), NULL, 10);
	author_id = strtoll(db_res_get(r, 0, 1), NULL, 10);
	cid = strtoll(db_res_get(r, 0, 2), NULL, 10);
	if (community_access(req, cid, ROLE_NONE, &c) < 0) {
		/* private and not the caller's: as if there were no comment */
		if (req->resp.status == 404)
			http_reply_error(req, TH_ENOTFOUND, "no such comment", NULL);
		return;
	}
	if (author_id != req->user_id && (c.banned || c.my_role < ROLE_MODERATOR)) {
		http_reply_error(req, c.banned ? TH_EBANNED : TH_EFORBIDDEN,
				 c.banned ? "you are banned from this community"
					  : "only the author or a moderator may delete a comment",
				 NULL);
		return;
	}
	if (db_begin_or_reply(req) < 0)
		return;
	n = comment_remove(req, cid, post_id, id);
	if (n < 0)
		return;
	if (n == 0) {
		db_rollback();
		http_reply_error(req, TH_ENOTFOUND, "no such comment", NULL);
		return;
	}
	if (db_commit_or_reply(req) < 0)
		return;
	feedcache_bump(cid);
	ryw_wrote(req->user_id);
	log_info("audit: user %lld deleted comment %lld (%lld with replies) of user %lld",
		 (long long)req->user_id, (long long)id, n, (long long)author_id);
	http_reply_empty(req, 204);
}
