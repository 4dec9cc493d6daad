/* settings: the media settings every program of this directory reads (the
 * FastCGI app, th-media-gc, the thumbnail benchmark), and the choice of the
 * storage backend.  Read once at start-up; a bad value stops the program
 * (lib/config exits with a message). */
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "media.h"
#include "storage.h"

struct media_cfg media_cfg;
const struct storage_ops *storage;

int media_settings_load(void)
{
	int n;

	media_cfg.var_dir = cfg_str("TH_VAR_DIR", NULL);
	if (!media_cfg.var_dir) {
		fprintf(stderr, "media: TH_VAR_DIR is not set\n");
		return -1;
	}
	n = snprintf(media_cfg.tmp_dir, sizeof(media_cfg.tmp_dir), "%s/media/tmp",
		     media_cfg.var_dir);
	if (n < 0 || (size_t)n >= sizeof(media_cfg.tmp_dir)) {
		fprintf(stderr, "media: TH_VAR_DIR is too long\n");
		return -1;
	}
	media_cfg.max_bytes = cfg_int("TH_MEDIA_MAX_BYTES", MEDIA_DEFAULT_MAX_BYTES, 1, 1LL << 40);
	media_cfg.quota_bytes = cfg_int("TH_MEDIA_QUOTA_BYTES", 1LL << 30, 0, 1LL << 50);
	media_cfg.url_ttl = cfg_int("TH_MEDIA_URL_TTL", 3600, 10, 7 * 86400);
	/* 0 turns nginx's reuse of download answers off (download.c) */
	media_cfg.grant_ttl = cfg_int("TH_MEDIA_GRANT_TTL", 1, 0, 60);
	media_cfg.max_pixels = 50000000;
	return 0;
}

int storage_select(void)
{
	const char *name = cfg_str("TH_MEDIA_STORAGE", "local");

	if (strcmp(name, "local") == 0) {
		storage = &storage_local;
	} else if (strcmp(name, "s3") == 0) {
		storage = &storage_s3;
	} else {
		fprintf(stderr, "media: TH_MEDIA_STORAGE must be local or s3, not %.32s\n", name);
		return -1;
	}
	return storage->init();
}
