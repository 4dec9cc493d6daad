/* media: the media object, GET and DELETE /api/media/:id.  Downloads
 * (GET /media/:id/:variant) are download.c. */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "jh.h"
#include "log.h"
#include "media.h"
#include "reply.h"
#include "storage.h"
#include "user.h"
#include "vcache.h"

#define CACHE_PUBLIC "public, max-age=86400"

/* ---- the object ---- */

struct json_object *media_json(struct http_req *req, const struct media_row *m)
{
	struct json_object *o = json_object_new_object(), *v;
	static const char *const names[] = {"original", "thumb", "medium"};
	int nvar = strcmp(m->kind, "image") == 0 ? 3 : 1;

	if (!o)
		return NULL;
	json_object_object_add(o, "id", json_object_new_string(m->id));
	json_object_object_add(o, "owner_id", json_object_new_int64(m->owner_id));
	json_object_object_add(o, "community_id",
			       m->community_id ? json_object_new_int64(m->community_id) : NULL);
	json_object_object_add(o, "kind", json_object_new_string(m->kind));
	json_object_object_add(o, "mime", json_object_new_string(m->mime));
	json_object_object_add(o, "size", json_object_new_int64(m->size));
	json_object_object_add(o, "sha256", json_object_new_string(m->sha256));
	if (m->has_dims) {
		json_object_object_add(o, "width", json_object_new_int(m->width));
		json_object_object_add(o, "height", json_object_new_int(m->height));
	}
	json_object_object_add(o, "filename", json_object_new_string(m->filename));
	/* o owns v from here: it is filled in place */
	v = json_object_new_object();
	json_object_object_add(o, "variants", v);
	for (int i = 0; v && i < nvar; i++) {
		const char *url = media_url(req, m, names[i]);

		json_object_object_add(v, names[i], url ? json_object_new_string(url) : NULL);
	}
	json_object_object_add(o, "created_at", json_object_new_string(m->created_at));
	return o;
}

/* Length of the UTF-8 sequence starting with byte b (1 for a stray byte). */
static size_t utf8_seq(unsigned char b)
{
	return b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
}

char *media_clean_filename(struct arena *a, const char *name)
{
	const char *base = name, *p;
	char *out;
	size_t n = 0, len;

	/* the last path component, whichever separator a client uses */
	for (p = name; *p; p++)
		if (*p == '/' || *p == '\\')
			base = p + 1;
	len = strlen(base);
	out = arena_alloc(a, len + 8);
	if (!out)
		return NULL;
	for (p = base; *p && n < MEDIA_FILENAME_MAX;) {
		unsigned char ch = (unsigned char)*p;
		size_t k = utf8_seq(ch);

		if (ch < 0x20 || ch == 0x7f || ch == '"' || ch == '\'' || ch == ';' || ch == '%') {
			p++; /* quotes and ; would end the header parameter */
			continue;
		}
		if (k > 1) {
			size_t j;

			for (j = 1; j < k && ((unsigned char)p[j] & 0xc0) == 0x80; j++)
				;
			/* overlong forms, surrogates and leads past U+10FFFF too:
			 * PostgreSQL refuses what is not UTF-8 */
			if (j < k || n + k > MEDIA_FILENAME_MAX || jh_utf8_len(p, k) != 1) {
				p += j; /* broken or cut sequence: dropped */
				continue;
			}
		} else if (ch >= 0x80) {
			p++; /* a continuation byte without its lead */
			continue;
		}
		memcpy(out + n, p, k);
		n += k;
		p += k;
	}
	out[n] = '\0';
	/* "", "." and ".." name no file */
	if (n == 0 || strcmp(out, ".") == 0 || strcmp(out, "..") == 0)
		return arena_strdup(a, "file");
	return out;
}

/* Content-Disposition for a stored (clean) filename, at most ~480 bytes:
 * an ASCII fallback and the UTF-8 name percent-encoded (RFC 5987). */
char *media_disposition(struct arena *a, const char *type, const char *name)
{
	char ascii[101], enc[301];
	size_t na = 0, ne = 0;
	const char *p;

	for (p = name; *p && na < sizeof(ascii) - 1; p++)
		ascii[na++] = ((unsigned char)*p < 0x80 && *p != '\\') ? *p : '_';
	ascii[na] = '\0';
	for (p = name; *p;) {
		size_t k = utf8_seq((unsigned char)*p), j;

		if (ne + 3 * k >= sizeof(enc))
			break; /* whole characters only */
		for (j = 0; j < k && p[j]; j++) {
			unsigned char ch = (unsigned char)p[j];

			if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
			    (ch >= '0' && ch <= '9') || strchr("!#$&+-.^_`|~", ch))
				enc[ne++] = (char)ch;
			else
				ne += (size_t)snprintf(enc + ne, sizeof(enc) - ne, "%%%02X", ch);
		}
		p += j;
	}
	enc[ne] = '\0';
	return arena_printf(a, "%s; filename=\"%s\"; filename*=UTF-8''%s", type, ascii, enc);
}

/* ---- handlers ---- */

/* GET /api/media/:id */
void media_get(struct http_req *req)
{
	struct media_row m;

	if (media_load_visible(req, http_param(req, "id"), &m) < 0)
		return;
	http_reply_json(req, 200, media_json(req, &m));
}

static void delete_key(const char *key, enum th_err *worst)
{
	enum th_err e = storage->del(key);

	if (e != TH_OK && e != TH_ENOTFOUND)
		*worst = e;
}

#define MEDIA_FEEDS_MAX 100 /* communities whose cached feeds a delete drops */
#define MEDIA_STR_(x) #x
#define MEDIA_STR(x) MEDIA_STR_(x)

/* DELETE /api/media/:id: the owner; the bytes go with the last row that
 * names them.  Posts that list the id keep it in media_ids; their media
 * arrays simply no longer find it, and the cached feed pages and posts of
 * their communities are dropped (feed version bumped after the commit). */

void media_delete(struct http_req *req)
{
	struct media_row m;
	struct db_res *r = NULL, *feeds;
	enum th_err e = TH_OK;
	char key[MEDIA_SHA_HEX + 16];
	int in_tx = 0;

	if (media_load_visible(req, http_param(req, "id"), &m) < 0)
		return;
	if (m.owner_id != req->user_id) {
		http_reply_error(req, TH_EFORBIDDEN, "only its owner deletes a medium", NULL);
		return;
	}
	if (db_begin_or_reply(req) < 0)
		return;
	in_tx = 1;
	{
		/* the same lock as an upload of these bytes (upload.c) */
		const char *p[] = {m.sha256};

		r = db_exec_or_reply(req, DB_PRIMARY,
				     "SELECT pg_advisory_xact_lock(hashtextextended($1, 7))", 1, p);
		if (!r)
			goto out;
	}
	{
		const char *p[] = {m.id, m.sha256};

		r = db_exec_or_reply(req, DB_PRIMARY,
				     "WITH d AS (DELETE FROM media WHERE id = $1 RETURNING id) "
				     "SELECT (SELECT count(*) FROM d), "
				     "(SELECT count(*) FROM media WHERE sha256 = $2 AND id <> $1)",
				     2, p);
	}
	if (!r)
		goto out;
	if (strcmp(db_res_get(r, 0, 0), "1") != 0) {
		http_reply_error(req, TH_ENOTFOUND, "no such media", NULL);
		goto out;
	}
	if (strcmp(db_res_get(r, 0, 1), "0") == 0) {
		/* variants first: a failure leaves the row and its original */
		snprintf(key, sizeof(key), "%s.thumb", m.sha256);
		delete_key(key, &e);
		snprintf(key, sizeof(key), "%s.medium", m.sha256);
		delete_key(key, &e);
		if (e == TH_OK)
			delete_key(m.sha256, &e);
		if (e != TH_OK) {
			http_reply_error(req, TH_EUNAVAILABLE, "the media store is unavailable",
					 NULL);
			goto out;
		}
	}
	{
		/* the communities whose posts showed it (posts_media_ids_idx): their
		 * cached feed pages and posts list it until their version moves.
		 * A medium is its owner's, in their posts only: a few communities;
		 * beyond MEDIA_FEEDS_MAX the rest show it for at most the cache's
		 * TTL */
		const char *p[] = {m.id};

		feeds = db_exec_or_reply(req, DB_PRIMARY,
					 "SELECT DISTINCT community_id FROM posts "
					 "WHERE media_ids @> ARRAY[$1::uuid] "
					 "LIMIT " MEDIA_STR(MEDIA_FEEDS_MAX),
					 1, p);
		if (!feeds)
			goto out;
	}
	if (db_commit_or_reply(req) < 0)
		goto out;
	in_tx = 0;
	for (int i = 0; i < db_res_rows(feeds); i++) {
		char vkey[VCACHE_KEY_MAX];

		snprintf(vkey, sizeof(vkey), VCACHE_FEED_KEY,
			 strtoll(db_res_get(feeds, i, 0), NULL, 10));
		vcache_bump(vkey);
	}
	log_info("media %s deleted by its owner %lld", m.id, (long long)req->user_id);
	http_reply_empty(req, 204);
out:
	if (in_tx)
		db_rollback();
}
