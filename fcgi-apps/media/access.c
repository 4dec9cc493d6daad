/* access: who may see a medium, and the signed URLs that let an <img src>
 * (which carries no bearer token) fetch a private one.
 *
 * Visibility (API.md "who may see it"):
 *   - its owner, always;
 *   - profile media (no community) and a public community's media: anyone —
 *     like the community's posts, which anyone may read, and like an avatar;
 *     their URLs are plain and cacheable by shared caches;
 *   - a private community's media: its members (banned users are no members).
 *     Everyone else gets 404, as for the community itself.
 *
 * Signed URLs of private media: lib/mediaurl.c. */
#include <fcntl.h>
#include <json-c/json.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "db.h"
#include "log.h"
#include "media.h"
#include "mediaurl.h"
#include "reply.h"
#include "user.h"

int access_init(void)
{
	return mediaurl_init();
}

int media_sig_check(struct http_req *req, const char *id, const char *variant)
{
	const char *exp_s = http_query(req, "exp"), *sig = http_query(req, "sig");

	if (!exp_s && !sig)
		return 0;
	return mediaurl_check(id, variant, exp_s, sig);
}

char *media_url(struct http_req *req, const struct media_row *m, const char *variant)
{
	return mediaurl_make(req->arena, m->id, variant, m->is_public);
}

int media_visible(const struct http_req *req, const struct media_row *m)
{
	if (req->user_id != 0 && req->user_id == m->owner_id)
		return 1;
	return m->community_id == 0 || policy_readable(&m->cm);
}

enum {
	C_ID,
	C_OWNER,
	C_COMMUNITY,
	C_KIND,
	C_MIME,
	C_SIZE,
	C_SHA,
	C_WIDTH,
	C_HEIGHT,
	C_FILENAME,
	C_VARIANTS,
	C_CREATED,
	C_POLICY
};

static char *col_dup(struct http_req *req, const struct db_res *r, int col)
{
	return arena_strdup(req->arena, db_res_get(r, 0, col));
}

int media_load(struct http_req *req, const char *id, struct media_row *m)
{
	char uid[24];
	const char *params[2] = {id, uid};
	struct db_res *r;

	memset(m, 0, sizeof(*m));
	if (!id || !ids_uuid_ok(id, strlen(id))) {
		http_reply_error(req, TH_ENOTFOUND, "no such media", NULL);
		return -1;
	}
	snprintf(uid, sizeof(uid), "%lld", (long long)req->user_id);
	/* the primary: an uploader reads their upload back at once */
	r = db_exec_or_reply(req, DB_PRIMARY,
			     "SELECT md.id, md.owner_id, md.community_id, md.kind, md.mime, "
			     "md.size, "
			     "md.sha256, md.width, md.height, md.filename, "
			     "md.variants, " TH_TIME_SQL(
				     "md.created_at") ", " POLICY_COLS " "
						      "FROM media md "
						      "LEFT JOIN LATERAL community_access($2, "
						      "md.community_id) a ON true "
						      "WHERE md.id = $1",
			     2, params);
	if (!r)
		return -1;
	if (db_res_rows(r) != 1) {
		http_reply_error(req, TH_ENOTFOUND, "no such media", NULL);
		return -1;
	}
	snprintf(m->id, sizeof(m->id), "%s", db_res_get(r, 0, C_ID));
	m->owner_id = strtoll(db_res_get(r, 0, C_OWNER), NULL, 10);
	m->community_id = strtoll(db_res_get(r, 0, C_COMMUNITY), NULL, 10);
	m->kind = col_dup(req, r, C_KIND);
	m->mime = col_dup(req, r, C_MIME);
	m->size = strtoll(db_res_get(r, 0, C_SIZE), NULL, 10);
	m->sha256 = col_dup(req, r, C_SHA);
	m->has_dims = !db_res_isnull(r, 0, C_WIDTH);
	m->width = atoi(db_res_get(r, 0, C_WIDTH));
	m->height = atoi(db_res_get(r, 0, C_HEIGHT));
	m->filename = col_dup(req, r, C_FILENAME);
	m->variants = col_dup(req, r, C_VARIANTS);
	m->created_at = col_dup(req, r, C_CREATED);
	policy_read(r, 0, C_POLICY, m->community_id, &m->cm);
	m->is_public = m->community_id == 0 || m->cm.is_public;
	if (!m->kind || !m->mime || !m->sha256 || !m->filename || !m->variants || !m->created_at) {
		http_reply_error(req, TH_EINTERNAL, "out of memory", NULL);
		return -1;
	}
	return 0;
}

int media_load_visible(struct http_req *req, const char *id, struct media_row *m)
{
	if (media_load(req, id, m) < 0)
		return -1;
	if (!media_visible(req, m)) {
		http_reply_error(req, TH_ENOTFOUND, "no such media", NULL);
		return -1;
	}
	return 0;
}
