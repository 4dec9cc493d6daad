/* image: MagickWand, the only file that includes it.
 *
 * Every image is pinged first: the header alone gives its size, so a
 * decompression bomb (a small PNG of 20000x20000 pixels) is refused before a
 * pixel is decoded.  Resource limits bound what decoding may take anyway
 * (a lying header, a codec bug): past them MagickWand fails the read instead
 * of growing the worker.  Reads name the coder ("png:/path") with the type
 * libmagic detected, so ImageMagick never picks a coder by sniffing.
 *
 * Every variant, the original included, is re-encoded with the orientation
 * applied and all profiles and comments stripped (EXIF GPS among them): the
 * bytes we serve never carry the uploader's metadata. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <wand/MagickWand.h>

#include "config.h"
#include "log.h"
#include "media.h"

#define THUMB_BOX 320
#define MEDIUM_BOX 1280

int image_init(void)
{
	MagickWandGenesis();
	/* Limits per worker.  Width and height refuse absurd headers; memory,
	 * map and disk bound the pixel cache (the system policy may lower
	 * them, never raise them); one thread: workers are processes and a
	 * pool of them already uses the cores. */
	if (MagickSetResourceLimit(WidthResource, (MagickSizeType)cfg_int("TH_MEDIA_MAX_WIDTH", 16384, 1, 1 << 20)) == MagickFalse ||
	    MagickSetResourceLimit(HeightResource, (MagickSizeType)cfg_int("TH_MEDIA_MAX_HEIGHT", 16384, 1, 1 << 20)) == MagickFalse ||
	    MagickSetResourceLimit(AreaResource, (MagickSizeType)media_cfg.max_pixels) == MagickFalse ||
	    MagickSetResourceLimit(MemoryResource, 256LL * 1024 * 1024) == MagickFalse ||
	    MagickSetResourceLimit(MapResource, 512LL * 1024 * 1024) == MagickFalse ||
	    MagickSetResourceLimit(DiskResource, 1024LL * 1024 * 1024) == MagickFalse ||
	    MagickSetResourceLimit(ListLengthResource, 1000) == MagickFalse ||
	    MagickSetResourceLimit(ThreadResource, 1) == MagickFalse) {
		fprintf(stderr, "media: cannot set ImageMagick resource limits\n");
		return -1;
	}
	/* TimeResource is left alone: in ImageMagick 6 it counts from process
	 * start, so a long-lived worker would refuse every image after it.
	 * The pixel check, the area and memory limits bound the work instead. */
	return 0;
}

void image_fini(void)
{
	MagickWandTerminus();
}

/* The coder prefix for a mime we accepted. */
static const char *coder_of(const char *mime)
{
	if (strcmp(mime, "image/jpeg") == 0)
		return "jpeg";
	if (strcmp(mime, "image/png") == 0)
		return "png";
	if (strcmp(mime, "image/gif") == 0)
		return "gif";
	if (strcmp(mime, "image/webp") == 0)
		return "webp";
	return NULL;
}

/* The wand's error text into msg (for the log: may quote file content). */
static void wand_error(MagickWand *w, const char *what)
{
	ExceptionType sev;
	char *desc = MagickGetException(w, &sev);
	char clean[200];

	log_info("image: %s: %s (severity %d)", what,
		 log_clean(clean, sizeof(clean), desc ? desc : "?"), (int)sev);
	if (desc)
		MagickRelinquishMemory(desc);
}

/* A read is bad when it failed, or decoded something it calls corrupt (a
 * truncated JPEG reads "successfully" with grey where the data ended). */
static int bad_severity(ExceptionType sev)
{
	return sev == CorruptImageWarning || sev >= ErrorException;
}

static int read_failed(MagickWand *w, MagickBooleanType ok)
{
	const Image *img;

	if (ok == MagickFalse || bad_severity(MagickGetExceptionType(w)))
		return 1;
	/* ImageMagick 6 coders (JPEG's "premature end of data") record their
	 * warnings on the image, not on the wand */
	for (img = GetImageFromMagickWand(w); img; img = GetNextImageInList(img))
		if (bad_severity(img->exception.severity)) {
			log_info("image: %s", img->exception.reason ? img->exception.reason : "corrupt");
			return 1;
		}
	return 0;
}

static int tmp_file(char path[4096])
{
	int fd;

	snprintf(path, 4096, "%s/img-XXXXXX", media_cfg.tmp_dir);
	fd = mkstemp(path);
	if (fd < 0) {
		log_error("image: mkstemp in %s: %s", media_cfg.tmp_dir, strerror(errno));
		path[0] = '\0';
		return -1;
	}
	close(fd);
	return 0;
}

/* Writes the wand (all frames when all) to a new temp file as coder; fills f. */
static int write_file(MagickWand *w, const char *coder, const char *mime, int all,
		      struct img_file *f)
{
	char target[4200];

	if (tmp_file(f->path) < 0)
		return -1;
	snprintf(target, sizeof(target), "%s:%s", coder, f->path);
	if ((all ? MagickWriteImages(w, target, MagickTrue) : MagickWriteImage(w, target)) ==
	    MagickFalse) {
		wand_error(w, "write");
		return -1;
	}
	f->mime = mime;
	MagickSetFirstIterator(w);
	f->width = (int)MagickGetImageWidth(w);
	f->height = (int)MagickGetImageHeight(w);
	if (media_sha256_file(f->path, f->sha256, &f->size) < 0)
		return -1;
	return 0;
}

/* w (one frame) scaled to fit box x box, never enlarged, written as coder. */
static int write_variant(MagickWand *w, int box, const char *coder, const char *mime,
			 struct img_file *f)
{
	MagickWand *v = CloneMagickWand(w);
	size_t cw = MagickGetImageWidth(w), ch = MagickGetImageHeight(w), nw = cw, nh = ch;
	int rc = -1;

	if (!v)
		return -1;
	if (cw > (size_t)box || ch > (size_t)box) {
		if (cw >= ch) {
			nw = (size_t)box;
			nh = ch * (size_t)box / cw;
		} else {
			nh = (size_t)box;
			nw = cw * (size_t)box / ch;
		}
		if (nw < 1)
			nw = 1;
		if (nh < 1)
			nh = 1;
		/* MagickThumbnailImage: a resize tuned for down-scaling that
		 * also drops profiles */
		if (MagickThumbnailImage(v, nw, nh) == MagickFalse) {
			wand_error(v, "resize");
			goto out;
		}
	}
	if (MagickStripImage(v) == MagickFalse) {
		wand_error(v, "strip");
		goto out;
	}
	rc = write_file(v, coder, mime, 0, f);
out:
	DestroyMagickWand(v);
	return rc;
}

void image_out_unlink(struct img_out *out)
{
	struct img_file *f[] = {&out->original, &out->thumb, &out->medium};

	for (size_t i = 0; i < 3; i++) {
		if (f[i]->path[0])
			unlink(f[i]->path);
		f[i]->path[0] = '\0';
	}
}

enum th_err image_process(const char *src, const char *mime, struct img_out *out,
			  char *msg, size_t msgsize)
{
	const char *coder = coder_of(mime);
	/* variants: JPEG stays JPEG; the others become PNG (alpha kept, and a
	 * GIF's first frame, not an animation, is a thumbnail) */
	const char *vcoder = strcmp(mime, "image/jpeg") == 0 ? "jpeg" : "png";
	const char *vmime = strcmp(mime, "image/jpeg") == 0 ? "image/jpeg" : "image/png";
	char target[4200];
	MagickWand *w = NULL, *first = NULL;
	unsigned long long pixels = 0;
	size_t i, n;
	enum th_err e = TH_EVALIDATION;

	memset(out, 0, sizeof(*out));
	snprintf(msg, msgsize, "the image cannot be read: corrupt, truncated, or beyond the limits "
		 "(50 megapixels, 16384 pixels a side)");
	if (!coder) {
		e = TH_EINTERNAL;
		goto out;
	}
	snprintf(target, sizeof(target), "%s:%s", coder, src);
	w = NewMagickWand();
	if (!w) {
		e = TH_EINTERNAL;
		goto out;
	}
	/* 1. the header only: how many pixels would decoding make? */
	if (read_failed(w, MagickPingImage(w, target))) {
		wand_error(w, "ping");
		goto out;
	}
	n = MagickGetNumberImages(w);
	for (i = 0; i < n; i++) {
		MagickSetIteratorIndex(w, (ssize_t)i);
		pixels += (unsigned long long)MagickGetImageWidth(w) * MagickGetImageHeight(w);
	}
	if (n == 0 || pixels == 0) {
		goto out;
	}
	if (pixels > (unsigned long long)media_cfg.max_pixels) {
		snprintf(msg, msgsize, "image over %lld megapixels",
			 media_cfg.max_pixels / 1000000);
		goto out;
	}
	ClearMagickWand(w);
	/* 2. decode, within the resource limits */
	if (read_failed(w, MagickReadImage(w, target))) {
		wand_error(w, "read");
		goto out;
	}
	MagickResetIterator(w);
	while (MagickNextImage(w) != MagickFalse) {
		if (MagickAutoOrientImage(w) == MagickFalse || MagickStripImage(w) == MagickFalse) {
			wand_error(w, "orient/strip");
			goto out;
		}
	}
	e = TH_EINTERNAL;
	snprintf(msg, msgsize, "cannot process the image");
	if (write_file(w, coder, mime, MagickGetNumberImages(w) > 1, &out->original) < 0)
		goto out;
	MagickSetFirstIterator(w);
	first = MagickGetImage(w);
	if (!first)
		goto out;
	if (write_variant(first, THUMB_BOX, vcoder, vmime, &out->thumb) < 0 ||
	    write_variant(first, MEDIUM_BOX, vcoder, vmime, &out->medium) < 0)
		goto out;
	e = TH_OK;
	msg[0] = '\0';
out:
	if (e != TH_OK)
		image_out_unlink(out);
	if (first)
		DestroyMagickWand(first);
	if (w)
		DestroyMagickWand(w);
	return e;
}
