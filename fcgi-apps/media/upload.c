/* upload: POST /api/media — the body streamed to a temporary file.
 *
 * The loop does not read the body of this route (ROUTE_STREAM): it checked
 * Content-Length against TH_MEDIA_MAX_BYTES (+ multipart slack), and the
 * bytes come here in chunks of 64 KiB, are hashed (SHA-256, OpenSSL) and written to
 * $TH_VAR_DIR/media/tmp as they arrive, so a worker's memory does not grow
 * with the file.  nginx has the whole body on disk before the worker sees it
 * (fastcgi_request_buffering), so a slow client never holds a worker.
 *
 * Whatever fails, the temporary files go (single exit at `out`): an upload
 * cut off in the middle (fewer bytes than Content-Length) leaves no file and
 * no row.
 *
 * The row is written in one transaction that also holds an advisory lock on
 * the hash (media.c's delete takes the same lock), so a delete of the last
 * other row sharing these bytes cannot remove them under a new row, and the
 * caller's user row (FOR UPDATE), so two concurrent uploads cannot both
 * slip under the quota. */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <openssl/evp.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "config.h"
#include "db.h"
#include "jh.h"
#include "log.h"
#include "metrics.h"
#include "media.h"
#include "reply.h"
#include "storage.h"

struct sink {
	int fd;
	long long bytes; /* file bytes written */
	EVP_MD_CTX *sha; /* owned: freed at upload_create's exit */
	int too_large;
	int io_error; /* hashing or writing failed (ours) */
};

static int c_uploads = -2, c_bytes = -2;

int upload_init(void)
{
	return 0;
}

/* The counters exist once the metrics file is open, after init: register
 * them on first use. */
static void count_upload(long long bytes)
{
	if (c_uploads == -2) {
		c_uploads = metrics_counter("uploads_total");
		c_bytes = metrics_counter("upload_bytes_total");
	}
	if (c_uploads >= 0)
		metrics_add(c_uploads, 1);
	if (c_bytes >= 0)
		metrics_add(c_bytes, (uint64_t)bytes);
}

static int sink_write(void *ctx, const char *buf, size_t n)
{
	struct sink *s = ctx;

	if (s->bytes + (long long)n > media_cfg.max_bytes) {
		s->too_large = 1;
		return -1;
	}
	if (EVP_DigestUpdate(s->sha, buf, n) != 1) {
		log_error("upload: SHA-256 update failed");
		s->io_error = 1;
		return -1;
	}
	while (n > 0) {
		ssize_t w = write(s->fd, buf, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			log_error("upload: write: %s", strerror(errno));
			s->io_error = 1;
			return -1;
		}
		buf += w;
		n -= (size_t)w;
		s->bytes += w;
	}
	return 0;
}

/* SHA-256 through OpenSSL's EVP rather than libsodium: the same digest, but
 * EVP uses the CPU's SHA instructions (SHA-NI) where libsodium runs portable
 * code — 10 MiB took ~8 ms against ~40 ms on the benchmark machine, a third
 * of a 10 MiB upload's own time.  A new context, or NULL (out of memory). */
static EVP_MD_CTX *sha_new(void)
{
	EVP_MD_CTX *c = EVP_MD_CTX_new();

	if (c && EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(c);
		c = NULL;
	}
	if (!c)
		log_error("upload: cannot start a SHA-256");
	return c;
}

/* The digest of c as lower-case hex.  0 or -1. */
static int sha_hex(EVP_MD_CTX *c, char hex[MEDIA_SHA_HEX + 1])
{
	unsigned char h[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	if (EVP_DigestFinal_ex(c, h, &n) != 1 || n * 2 != MEDIA_SHA_HEX) {
		log_error("upload: SHA-256 final failed");
		return -1;
	}
	sodium_bin2hex(hex, MEDIA_SHA_HEX + 1, h, n);
	return 0;
}

int media_sha256_file(const char *path, char hex[MEDIA_SHA_HEX + 1], long long *size)
{
	EVP_MD_CTX *c;
	char buf[MEDIA_CHUNK];
	int fd, rc = -1;
	ssize_t n = -1;

	*size = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	c = sha_new();
	if (!c)
		goto out;
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		if (EVP_DigestUpdate(c, buf, (size_t)n) != 1)
			goto out;
		*size += n;
	}
	if (n == 0 && sha_hex(c, hex) == 0)
		rc = 0;
out:
	EVP_MD_CTX_free(c);
	close(fd);
	return rc;
}

static void too_large(struct http_req *req)
{
	char msg[96];

	snprintf(msg, sizeof(msg), "the file is over the upload limit of %lld bytes",
		 media_cfg.max_bytes);
	http_reply_error(req, TH_ETOOLARGE, msg, NULL);
}

/* Reads the body into s: raw, or the `file` part of a multipart body.
 * *filename: the part's filename, if any (arena).  -1 when replied. */
static int receive(struct http_req *req, struct sink *s, const char **filename)
{
	const char *ct = http_header(req, "Content-Type");
	char boundary[80], *buf = arena_alloc(req->arena, MEDIA_CHUNK);
	struct mp *mp = NULL;
	long long total = 0;
	long n;
	int failed = 0;

	*filename = NULL;
	if (!buf) {
		http_reply_error(req, TH_EINTERNAL, "out of memory", NULL);
		return -1;
	}
	if (ct && strncasecmp(ct, "multipart/", 10) == 0) {
		if (mp_boundary(ct, boundary, sizeof(boundary)) < 0) {
			http_reply_error(req, TH_EVALIDATION,
					 "multipart/form-data needs a boundary", "file");
			return -1;
		}
		mp = arena_alloc(req->arena, sizeof(*mp));
		if (!mp) {
			http_reply_error(req, TH_EINTERNAL, "out of memory", NULL);
			return -1;
		}
		mp_init(mp, boundary, sink_write, s);
	}
	while ((n = http_read_chunk(req, buf, MEDIA_CHUNK)) > 0) {
		total += n;
		if (mp ? mp_feed(mp, buf, (size_t)n) < 0 : sink_write(s, buf, (size_t)n) < 0) {
			failed = 1;
			break;
		}
	}
	if (s->too_large) {
		too_large(req);
		return -1;
	}
	/* the parser refused the body (not our storage): the client's fault,
	 * wherever in the body it happened */
	if (failed && mp && mp->state == MP_ERROR && !s->io_error) {
		http_reply_error(req, TH_EVALIDATION,
				 mp->error ? mp->error : "malformed multipart body", "file");
		return -1;
	}
	if (failed) {
		http_reply_error(req, TH_EUNAVAILABLE, "cannot store the upload", NULL);
		return -1;
	}
	if (n < 0 || (req->content_length >= 0 && total < req->content_length)) {
		/* the client (or nginx) went away mid-body */
		log_info("upload cut off after %lld of %lld bytes", total, req->content_length);
		http_reply_error(req, TH_EVALIDATION, "the upload was cut off", NULL);
		return -1;
	}
	if (mp) {
		if (mp_finish(mp) < 0) {
			http_reply_error(req, TH_EVALIDATION, mp->error, "file");
			return -1;
		}
		if (mp->filename[0])
			*filename = arena_strdup(req->arena, mp->filename);
	}
	if (s->bytes == 0) {
		http_reply_error(req, TH_EVALIDATION, "the file is empty", "file");
		return -1;
	}
	return 0;
}

/* The caller may upload to community `cid`: a member, not banned (the rules
 * of lib/policy.c, with the field named).  A private community a caller is no
 * member of does not exist for them (404). */
static int community_check(struct http_req *req, int64_t cid)
{
	struct community c;

	if (policy_load(req, cid, &c) < 0)
		return -1;
	switch (policy_decide(&c, req->user_id, ROLE_MEMBER)) {
	case TH_OK:
		return 0;
	case TH_EBANNED:
		http_reply_error(req, TH_EBANNED, "you are banned from this community", NULL);
		break;
	case TH_ENOTFOUND:
		http_reply_error(req, TH_ENOTFOUND, "no such community", "community_id");
		break;
	default:
		http_reply_error(req, TH_EFORBIDDEN, "join the community first", "community_id");
		break;
	}
	return -1;
}

/* 413 naming the quota. */
static void quota_error(struct http_req *req)
{
	char msg[128];

	snprintf(msg, sizeof(msg), "over your media quota of %lld bytes (TH_MEDIA_QUOTA_BYTES)",
		 media_cfg.quota_bytes);
	http_reply_error(req, TH_ETOOLARGE, msg, NULL);
}

/* Bytes the caller's media hold now; -1 when replied.  lock: in the
 * transaction, lock the user row first (concurrent uploads queue). */
static long long quota_used(struct http_req *req, int lock)
{
	char uid[24];
	const char *params[] = {uid};
	struct db_res *r;
	long long used;

	snprintf(uid, sizeof(uid), "%lld", (long long)req->user_id);
	if (lock) {
		r = db_exec_or_reply(req, DB_PRIMARY,
				     "SELECT 1 FROM users WHERE id = $1 FOR UPDATE", 1, params);
		if (!r)
			return -1;
	}
	r = db_exec_or_reply(req, DB_PRIMARY,
			     "SELECT coalesce(sum(size), 0) FROM media WHERE owner_id = $1", 1,
			     params);
	if (!r)
		return -1;
	used = strtoll(db_res_get(r, 0, 0), NULL, 10);
	return used;
}

static struct json_object *variant_json(const struct img_file *f)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "mime", json_object_new_string(f->mime));
	json_object_object_add(o, "size", json_object_new_int64(f->size));
	json_object_object_add(o, "sha256", json_object_new_string(f->sha256));
	json_object_object_add(o, "width", json_object_new_int(f->width));
	json_object_object_add(o, "height", json_object_new_int(f->height));
	return o;
}

static enum th_err put_all(const char *sha, const char *orig_path, const char *mime,
			   struct img_out *img, int is_image)
{
	char key[MEDIA_SHA_HEX + 16];
	enum th_err e = storage->put(sha, orig_path, mime);

	if (e != TH_OK || !is_image)
		return e;
	snprintf(key, sizeof(key), "%s.thumb", sha);
	e = storage->put(key, img->thumb.path, img->thumb.mime);
	if (e != TH_OK)
		return e;
	snprintf(key, sizeof(key), "%s.medium", sha);
	return storage->put(key, img->medium.path, img->medium.mime);
}

/* POST /api/media[?community_id=&filename=] */
void upload_create(struct http_req *req)
{
	const char *cid = http_query(req, "community_id"), *qname = http_query(req, "filename");
	const char *partname, *mime, *kind, *orig_path, *filename;
	char tmp[4096] = "", vid[4096] = "", sha[MEDIA_SHA_HEX + 1], size_s[24], w_s[16], h_s[16],
	     lock_s[24];
	char uid[24], msg[128], *id = NULL;
	struct sink s = {.fd = -1};
	struct img_out img;
	struct json_object *variants = NULL;
	struct budget budget = {.slot = -1};
	struct media_row m;
	struct db_res *r = NULL;
	long long used, size, cid_n;
	int is_image = 0, in_tx = 0;
	enum th_err e;

	memset(&img, 0, sizeof(img));
	/* 0. nginx's auth_request before the body (conf/nginx): the loop has
	 * verified the token (ROUTE_AUTH), which is all that is asked */
	if (http_env(req, "TH_MEDIA_UPLOAD_CHECK")) {
		http_reply_empty(req, 204);
		goto out;
	}
	/* 1. who and where, before a byte is read */
	if (cid && *cid) {
		if (cfg_parse_int(cid, 1, INT64_MAX, &cid_n) < 0) {
			http_reply_error(req, TH_EVALIDATION, "community_id must be a community id",
					 "community_id");
			goto out;
		}
		if (community_check(req, cid_n) < 0)
			goto out;
	} else {
		cid = NULL;
	}
	/* the declared size decides early (a multipart body carries a little
	 * more than its file); the bytes are counted again as they come */
	if (req->content_length > media_cfg.max_bytes + MEDIA_MULTIPART_SLACK) {
		too_large(req);
		goto out;
	}
	used = quota_used(req, 0);
	if (used < 0)
		goto out;
	if (req->content_length > 0 &&
	    used + req->content_length > media_cfg.quota_bytes + MEDIA_MULTIPART_SLACK) {
		quota_error(req);
		goto out;
	}
	/* 2. the bytes, to a temporary file */
	snprintf(tmp, sizeof(tmp), "%s/up-XXXXXX", media_cfg.tmp_dir);
	s.fd = mkstemp(tmp);
	if (s.fd < 0) {
		log_error("upload: mkstemp %s: %s", tmp, strerror(errno));
		tmp[0] = '\0';
		http_reply_error(req, TH_EUNAVAILABLE, "cannot store the upload", NULL);
		goto out;
	}
	s.sha = sha_new();
	if (!s.sha) {
		http_reply_error(req, TH_EINTERNAL, "out of memory", NULL);
		goto out;
	}
	if (receive(req, &s, &partname) < 0)
		goto out;
	if (close(s.fd) < 0) {
		s.fd = -1;
		http_reply_error(req, TH_EUNAVAILABLE, "cannot store the upload", NULL);
		goto out;
	}
	s.fd = -1;
	if (sha_hex(s.sha, sha) < 0) {
		http_reply_error(req, TH_EINTERNAL, NULL, NULL);
		goto out;
	}
	size = s.bytes;
	orig_path = tmp;
	/* 3. what it is, from the bytes */
	e = detect_file(tmp, &mime, &kind);
	if (e != TH_OK) {
		http_reply_error(req, e,
				 e == TH_EUNSUPPORTED
					 ? "not an allowed type: JPEG, PNG, GIF, WebP, MP4, WebM, "
					   "MP3, Ogg or PDF"
					 : NULL,
				 e == TH_EUNSUPPORTED ? "file" : NULL);
		goto out;
	}
	/* 4. images: re-encoded without metadata, and their variants, within
	 * the user's and the host's budgets (budget.c) */
	if (strcmp(kind, "image") == 0) {
		unsigned long long pixels = 0;

		is_image = 1;
		if (budget_user_take(req, &budget) < 0)
			goto out;
		e = image_pixels(req->arena, tmp, mime, &pixels);
		if (e == TH_OK && pixels <= (unsigned long long)media_cfg.max_pixels &&
		    budget_host_take(req, pixels, &budget) < 0)
			goto out;
		/* a header that cannot be read gets image_process's answer */
		image_on_progress(budget_keepalive, &budget);
		e = image_process(req->arena, tmp, mime, &img, msg, sizeof(msg));
		image_on_progress(NULL, NULL);
		budget_release(req, &budget);
		if (image_resources_held()) {
			/* a coder leaked pixel cache: this worker's ImageMagick
			 * accounting is spoiled for good.  SIGTERM is blocked
			 * while a request runs: the worker finishes this reply,
			 * then exits and multiwatch starts a fresh one. */
			log_warn("image: pixel cache still counted after the request; "
				 "restarting this worker");
			kill(getpid(), SIGTERM);
		}
		if (e != TH_OK) {
			http_reply_error(req, e, msg, e == TH_EVALIDATION ? "file" : NULL);
			goto out;
		}
		orig_path = img.original.path;
		size = img.original.size;
		memcpy(sha, img.original.sha256, sizeof(sha));
		variants = jh_object(req);
		json_object_object_add(variants, "thumb", variant_json(&img.thumb));
		json_object_object_add(variants, "medium", variant_json(&img.medium));
		snprintf(w_s, sizeof(w_s), "%d", img.original.width);
		snprintf(h_s, sizeof(h_s), "%d", img.original.height);
	}
	/* 4b. videos: the same frames, without the metadata (video.c) */
	if (strcmp(kind, "video") == 0) {
		e = video_strip(tmp, mime, vid, msg, sizeof(msg));
		if (e != TH_OK) {
			http_reply_error(req, e,
					 e == TH_EUNAVAILABLE ? "cannot process the video now"
							      : msg,
					 e == TH_EVALIDATION ? "file" : NULL);
			goto out;
		}
		if (media_sha256_file(vid, sha, &size) < 0) {
			http_reply_error(req, TH_EUNAVAILABLE, "cannot store the upload", NULL);
			goto out;
		}
		orig_path = vid;
	}
	filename = media_clean_filename(req->arena, qname && *qname ? qname
						    : partname      ? partname
								    : "file");
	if (!filename) {
		http_reply_error(req, TH_EINTERNAL, "out of memory", NULL);
		goto out;
	}
	/* 5. the row and the bytes, under the hash lock and the quota */
	if (db_begin_or_reply(req) < 0)
		goto out;
	in_tx = 1;
	{
		const char *p[] = {sha};

		r = db_exec_or_reply(req, DB_PRIMARY,
				     "SELECT pg_advisory_xact_lock(hashtextextended($1, 7))", 1, p);
		if (!r)
			goto out;
		r = NULL;
	}
	used = quota_used(req, 1);
	if (used < 0)
		goto out;
	if (used + size > media_cfg.quota_bytes) {
		quota_error(req);
		goto out;
	}
	e = put_all(sha, orig_path, mime, &img, is_image);
	if (e != TH_OK) {
		http_reply_error(req, TH_EUNAVAILABLE, "the media store is unavailable", NULL);
		goto out;
	}
	snprintf(uid, sizeof(uid), "%lld", (long long)req->user_id);
	snprintf(size_s, sizeof(size_s), "%lld", size);
	(void)lock_s;
	{
		const char *p[] = {uid,
				   cid,
				   kind,
				   mime,
				   size_s,
				   sha,
				   is_image ? w_s : NULL,
				   is_image ? h_s : NULL,
				   filename,
				   variants ? json_object_to_json_string(variants) : "{}"};

		r = db_exec_or_reply(req, DB_PRIMARY,
				     "INSERT INTO media (owner_id, community_id, kind, mime, size, "
				     "sha256, width, height, filename, variants) "
				     "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING "
				     "id",
				     10, p);
	}
	if (!r)
		goto out;
	id = arena_strdup(req->arena, db_res_get(r, 0, 0));
	if (db_commit() < 0) {
		log_error("db: commit failed: %s", db_last_error());
		http_reply_error(req, TH_EUNAVAILABLE, "database unavailable", NULL);
		goto out;
	}
	in_tx = 0;
	log_info("media %s stored: owner %lld, %s, %lld bytes, sha256 %.12s", id ? id : "?",
		 (long long)req->user_id, mime, size, sha);
	count_upload(s.bytes);
	if (!id || media_load(req, id, &m) < 0)
		goto out;
	http_reply_json(req, 201, media_json(req, &m));
out:
	if (in_tx)
		db_rollback();
	budget_release(req, &budget);
	if (s.fd >= 0)
		close(s.fd);
	EVP_MD_CTX_free(s.sha);
	/* put() consumed what it stored; anything left is ours to remove */
	if (tmp[0])
		unlink(tmp);
	if (vid[0])
		unlink(vid);
	image_out_unlink(&img);
}
