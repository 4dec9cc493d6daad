/* th-media: the media FastCGI app — uploads, image variants, authorized
 * downloads (API.md: Media).
 *
 * main.c holds the route table and the settings; each concern lives in a
 * file of its own (media.h).  The shared loop (fcgi-apps/lib/app.c) adds
 * GET /api/media/health and GET /metrics/media to this table.
 *
 * Settings (read once at start-up; a bad value stops the worker):
 *   TH_MEDIA_MAX_BYTES      one upload's file, default 100 MiB (-> 413)
 *   TH_MEDIA_QUOTA_BYTES    one user's media, default 1 GiB (-> 413)
 *   TH_MEDIA_URL_TTL        signed URL lifetime, default 3600 s
 *   TH_MEDIA_GRANT_TTL      how long nginx may reuse a download answer that
 *                           is the same for every caller, default 1 s, 0 off
 *   TH_MEDIA_URL_SECRET_FILE default $TH_VAR_DIR/keys/media-url.secret
 *   TH_MEDIA_STORAGE        local (default) | s3 (storage.h)
 *   TH_MEDIA_IMAGE_PER_USER images in processing at once per user, 2 (budget.c)
 *   TH_MEDIA_IMAGE_HOLD_S   how long a dead worker's place may stay taken, 300
 *   TH_MEDIA_HEAVY_PIXELS   an image over this takes a host slot, 4000000
 *   TH_MEDIA_HEAVY_CONCURRENCY  such images at once on the host, cores / 2 (>= 1)
 *   TH_MEDIA_HEAVY_WAIT_MS  how long one waits for a slot before 429, 1000
 *   TH_MEDIA_MAGICK_MEMORY / _MAP / _DISK  ImageMagick's pixel cache limits per
 *                           worker, 1 GiB / 1 GiB / 3 GiB (image.c)
 *   TH_MEDIA_IMAGE_TIMEOUT_MS  one image's processing, 60000 (then 400)
 *   TH_FFMPEG, TH_MEDIA_VIDEO_TIMEOUT_S  the metadata strip of videos, ffmpeg /
 *                           120 s (video.c) */
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "app.h"
#include "media.h"
#include "storage.h"

#define A ROUTE_AUTH
#define O ROUTE_AUTH_OPTIONAL
#define S ROUTE_STREAM

/* The loop copies this table before media_init runs, so the upload's limit
 * here is a ceiling for any TH_MEDIA_MAX_BYTES; upload.c checks the
 * configured limit on Content-Length before it reads a byte, and again on
 * the bytes themselves. */
#define UPLOAD_CEILING ((size_t)(1LL << 40) + MEDIA_MULTIPART_SLACK)

/* method, pattern, handler, flags, body limit */
static const struct route routes[] = {
	{"POST", "/api/media", upload_create, A | S, UPLOAD_CEILING},
	{"GET", "/api/media/:id", media_get, O, 0},
	{"DELETE", "/api/media/:id", media_delete, A, 0},
	{"GET", "/media/:id/:variant", media_download, O, 0},
	/* HEAD: players and caches ask for the size first; nginx answers it
	 * after the same authorization, without a body */
	{"HEAD", "/media/:id/:variant", media_download, O, 0},
};

static int media_init(void)
{
	if (media_settings_load() < 0)
		return -1;
	if (sodium_init() < 0) {
		fprintf(stderr, "media: libsodium failed to initialize\n");
		return -1;
	}
	if (access_init() < 0 || detect_init() < 0 || image_init() < 0 || budget_init() < 0 ||
	    video_init() < 0 || upload_init() < 0 || storage_select() < 0)
		return -1;
	return 0;
}

static void media_fini(void)
{
	if (storage)
		storage->fini();
	budget_fini();
	image_fini();
	detect_fini();
}

int main(void)
{
	static const struct app app = {
		.name = "media",
		.routes = routes,
		.nroutes = ROUTES_COUNT(routes),
		.init = media_init,
		.fini = media_fini,
	};

	return app_main(&app);
}
