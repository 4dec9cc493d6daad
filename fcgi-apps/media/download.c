/* download: GET (and HEAD) /media/:id/:variant — this app decides who may
 * have the bytes, then nginx sends them.
 *
 * Local storage answers X-Accel-Redirect to the internal location /_media/
 * (sendfile, Range -> 206, 416); S3 answers 302 to a presigned URL (see
 * storage_s3.c).  The headers that describe the bytes are ours: the detected
 * Content-Type (never the client's), ETag (the variant's SHA-256, so a 304
 * is decided here without touching the bytes), Cache-Control (public media:
 * shared caches may keep them; private: the browser only, and no longer
 * than a signed URL lives), X-Content-Type-Options: nosniff and a
 * Content-Disposition whose filename was cleaned at upload and is encoded
 * again here (RFC 6266 / 5987).
 *
 * Grants.  A media player fetches one file as many ranges, each a request;
 * a 1 MiB range costs nginx ~250 µs and a FastCGI round trip ~130 µs more.
 * So nginx first asks for a grant (auth_request to /_media_grant, with the
 * FastCGI param TH_MEDIA_GRANT, which no client can set), for requests that
 * carry no Authorization and no If-None-Match: those are anonymous, and the
 * answer is the same for whoever holds the URL.  A grant is 200 with the
 * file to send (X-Media-File, relative to $TH_VAR_DIR/media) and the
 * headers above as X-Media-*; nginx keeps it for X-Accel-Expires seconds
 * (TH_MEDIA_GRANT_TTL, 1 s by default; never past a signature's exp) under
 * the URL and sends the next ranges of that URL without asking us.
 * Anything else — an error, S3 — is 403 "ask the app", and nginx sends the
 * request on to media_download as a plain FastCGI request (for S3 nginx
 * keeps that 403 as it would a grant: one FastCGI request a download).
 *
 * What a kept grant means: a deleted medium, or one whose community turned
 * private, is still sent for at most TTL + 1 s to a URL that worked just
 * before (once its bytes are deleted nginx finds no file: 404).  Answers to
 * a caller with a token are never kept, so a removed member is refused at
 * once. */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jh.h"
#include "media.h"
#include "storage.h"

#define CACHE_PUBLIC "public, max-age=86400"

/* What a download sends, once decided. */
struct dl {
	struct media_row m;
	int sig; /* media_sig_check: 1 signed, 0 none */
	const char *mime, *sha;
	char etag[MEDIA_SHA_HEX + 3];
	char cache[64];
	char key[MEDIA_SHA_HEX + 16]; /* the storage key of the variant */
};

/* The stored facts of one variant: mime and sha256 (the ETag). */
static int variant_of(struct http_req *req, const struct media_row *m, const char *variant,
		      const char **mime, const char **sha)
{
	struct json_object *all, *v, *f;

	if (strcmp(variant, "original") == 0) {
		*mime = m->mime;
		*sha = m->sha256;
		return 0;
	}
	if (strcmp(variant, "thumb") != 0 && strcmp(variant, "medium") != 0)
		return -1;
	all = jh_own(req, jh_parse(m->variants, strlen(m->variants)));
	if (!all || !json_object_object_get_ex(all, variant, &v) ||
	    !json_object_object_get_ex(v, "mime", &f) ||
	    !(*mime = arena_strdup(req->arena, json_object_get_string(f))) ||
	    !json_object_object_get_ex(v, "sha256", &f) ||
	    !(*sha = arena_strdup(req->arena, json_object_get_string(f))))
		return -1;
	return 0;
}

/* Who may have it, and what describes it.  0: d is filled; -1: replied
 * (an error, or 304 to a matching If-None-Match). */
static int decide(struct http_req *req, struct dl *d)
{
	const char *id = http_param(req, "id"), *variant = http_param(req, "variant");
	const char *inm;

	if (media_load(req, id, &d->m) < 0)
		return -1;
	/* a signature is checked first: an altered or expired one is refused
	 * even for a caller who could see the medium otherwise — the URL is
	 * what is wrong, and a client should learn it */
	d->sig = media_sig_check(req, d->m.id, variant);
	if (d->sig < 0) {
		http_reply_error(req, TH_EFORBIDDEN, "the signed URL expired or was altered", NULL);
		return -1;
	}
	if (d->sig == 0 && !media_visible(req, &d->m)) {
		http_reply_error(req, TH_ENOTFOUND, "no such media", NULL);
		return -1;
	}
	if (variant_of(req, &d->m, variant, &d->mime, &d->sha) < 0) {
		http_reply_error(req, TH_ENOTFOUND, "no such variant", NULL);
		return -1;
	}
	snprintf(d->etag, sizeof(d->etag), "\"%s\"", d->sha);
	if (d->m.is_public)
		snprintf(d->cache, sizeof(d->cache), CACHE_PUBLIC);
	else
		snprintf(d->cache, sizeof(d->cache), "private, max-age=%lld", media_cfg.url_ttl);
	inm = http_header(req, "If-None-Match");
	if (inm && (strstr(inm, d->etag) || strcmp(inm, "*") == 0)) {
		http_reply_empty(req, 304);
		http_add_header(req, "ETag", d->etag);
		http_add_header(req, "Cache-Control", d->cache);
		return -1;
	}
	if (strcmp(variant, "original") == 0)
		snprintf(d->key, sizeof(d->key), "%s", d->m.sha256);
	else
		snprintf(d->key, sizeof(d->key), "%s.%s", d->m.sha256, variant);
	return 0;
}

/* a PDF opens as a download: a viewer in our origin is not a page we want
 * to run; images, audio and video play inline */
static char *disposition_of(struct http_req *req, const struct dl *d)
{
	return media_disposition(req->arena,
				 strcmp(d->m.kind, "pdf") == 0 ? "attachment" : "inline",
				 d->m.filename);
}

/* X-Accel-Expires of a grant: the same for everyone who holds the URL (a
 * valid signature, or a public medium), never past the signature's exp.
 * 0, or -1 when out of header room. */
static int grant_ttl_header(struct http_req *req, const struct dl *d)
{
	char v[24];
	long long ttl = media_cfg.grant_ttl;

	if (ttl <= 0 || (d->sig == 0 && !d->m.is_public))
		return 0;
	if (d->sig > 0) {
		/* mediaurl_check accepted exp as a decimal in the future */
		long long left = strtoll(http_query(req, "exp"), NULL, 10) - (long long)time(NULL);

		if (left <= ttl)
			return 0;
	}
	snprintf(v, sizeof(v), "%lld", ttl);
	return http_add_header(req, "X-Accel-Expires", v);
}

/* "Ask the app": replaces whatever decide() replied, headers too. */
static void no_grant(struct http_req *req)
{
	http_reply_empty(req, 403);
}

/* The answer to nginx's grant subrequest (see the top of this file). */
static void grant(struct http_req *req)
{
	struct dl d;
	char file[MEDIA_SHA_HEX + 32], *cd;

	if (decide(req, &d) < 0) {
		no_grant(req);
		return;
	}
	/* only a file on disk can be sent by nginx itself; S3's answer (a 302
	 * to a presigned URL) is the app's, and nginx may remember to ask for
	 * it as long as it would keep a grant */
	if (!storage->file) {
		no_grant(req);
		if (grant_ttl_header(req, &d) < 0)
			no_grant(req);
		return;
	}
	if (storage->file(d.key, file, sizeof(file)) < 0) {
		no_grant(req);
		return;
	}
	cd = disposition_of(req, &d);
	http_reply_empty(req, 200);
	if (!cd || http_add_header(req, "X-Media-File", file) < 0 ||
	    http_add_header(req, "X-Media-Type", d.mime) < 0 ||
	    http_add_header(req, "X-Media-Etag", d.etag) < 0 ||
	    http_add_header(req, "X-Media-Cache-Control", d.cache) < 0 ||
	    http_add_header(req, "X-Media-Disposition", cd) < 0 || grant_ttl_header(req, &d) < 0)
		no_grant(req);
}

/* GET /media/:id/:variant */
void media_download(struct http_req *req)
{
	struct dl d;
	char *cd;

	if (http_env(req, "TH_MEDIA_GRANT")) {
		grant(req);
		return;
	}
	if (decide(req, &d) < 0 || storage->deliver(req, d.key) < 0)
		return;
	cd = disposition_of(req, &d);
	req->resp.content_type = d.mime;
	/* a redirect to a presigned URL outlives it if cached: 300 s at most */
	if (req->resp.status == 302)
		snprintf(d.cache, sizeof(d.cache), "private, max-age=240");
	if (http_add_header(req, "ETag", d.etag) < 0 ||
	    http_add_header(req, "Cache-Control", d.cache) < 0 ||
	    http_add_header(req, "X-Content-Type-Options", "nosniff") < 0 || !cd ||
	    http_add_header(req, "Content-Disposition", cd) < 0) {
		http_reply_error(req, TH_EINTERNAL, "out of memory", NULL);
		return;
	}
}
