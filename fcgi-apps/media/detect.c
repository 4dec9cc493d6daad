/* detect: the type of an upload, from its bytes alone (libmagic).
 *
 * The declared Content-Type and the filename never decide: a client could
 * send an HTML page named cat.jpg.  Only the allow-list of API.md passes;
 * the mime we store (and serve) is our canonical name for the type, not
 * libmagic's spelling of it. */
#include <magic.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "media.h"

static magic_t cookie;

/* libmagic's answer -> ours.  Ogg is audio in API.md; libmagic names an Ogg
 * stream audio/ogg or, when it cannot tell the codec, application/ogg. */
static const struct {
	const char *magic;
	const char *mime;
	const char *kind;
} allowed[] = {
	{"image/jpeg", "image/jpeg", "image"},     {"image/png", "image/png", "image"},
	{"image/gif", "image/gif", "image"},       {"image/webp", "image/webp", "image"},
	{"video/mp4", "video/mp4", "video"},       {"video/webm", "video/webm", "video"},
	{"audio/mpeg", "audio/mpeg", "audio"},     {"audio/ogg", "audio/ogg", "audio"},
	{"application/ogg", "audio/ogg", "audio"}, {"application/pdf", "application/pdf", "pdf"},
};

int detect_init(void)
{
	/* the signatures of the allow-list sit in the first bytes; an MP3's
	 * ID3 tag (cover art) may push its frames a little further */
	size_t bytes_max = 1024 * 1024;

	/* no decompression and no ELF/tar probing: we only want the
	 * allow-list's signatures, and compressed input is refused anyway */
	/* no text or encoding checks either: none of the allowed types is
	 * text, and the encoding check allocates four bytes per byte examined
	 * (28 MiB for libmagic's default 7 MiB window), which would make a
	 * worker's memory grow with the upload */
	cookie = magic_open(MAGIC_MIME_TYPE | MAGIC_NO_CHECK_COMPRESS | MAGIC_NO_CHECK_ELF |
			    MAGIC_NO_CHECK_TAR | MAGIC_NO_CHECK_ENCODING | MAGIC_NO_CHECK_TEXT |
			    MAGIC_NO_CHECK_CDF | MAGIC_ERROR);
	if (!cookie) {
		fprintf(stderr, "media: libmagic: cannot open\n");
		return -1;
	}
	if (magic_setparam(cookie, MAGIC_PARAM_BYTES_MAX, &bytes_max) != 0 ||
	    magic_load(cookie, NULL) != 0) {
		fprintf(stderr, "media: libmagic: cannot load the database: %s\n",
			magic_error(cookie));
		magic_close(cookie);
		cookie = NULL;
		return -1;
	}
	return 0;
}

void detect_fini(void)
{
	if (cookie)
		magic_close(cookie);
	cookie = NULL;
}

enum th_err detect_file(const char *path, const char **mime, const char **kind)
{
	const char *m = magic_file(cookie, path);
	size_t i;

	*mime = *kind = NULL;
	if (!m) {
		log_error("libmagic: %s", magic_error(cookie));
		return TH_EINTERNAL;
	}
	for (i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++) {
		if (strcmp(m, allowed[i].magic) == 0) {
			*mime = allowed[i].mime;
			*kind = allowed[i].kind;
			return TH_OK;
		}
	}
	log_info("upload refused: detected type %.64s", m);
	return TH_EUNSUPPORTED;
}
