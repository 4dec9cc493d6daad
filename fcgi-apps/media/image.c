/* image: MagickWand, the only file that includes it.
 *
 * Every image is sized first, from its header alone (a ping; a WebP from
 * its container, webpsize.c), so a
 * decompression bomb (a small PNG of 20000x20000 pixels) is refused before a
 * pixel is decoded.  Resource limits bound what decoding may take anyway
 * (a lying header, a codec bug): past them MagickWand fails the read instead
 * of growing the worker.  Reads name the coder ("png:/path") with the type
 * libmagic detected, so ImageMagick never picks a coder by sniffing.
 *
 * Every variant, the original included, is re-encoded with the orientation
 * applied and all profiles and comments stripped (EXIF GPS among them): the
 * bytes we serve never carry the uploader's metadata.  One exception, for
 * speed: a PNG that needs no rotation keeps its own compressed pixels, its
 * metadata chunks removed (png_copy_stripped). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <wand/MagickWand.h>

#include "arena.h"
#include "config.h"
#include "log.h"
#include "media.h"
#include "mono.h"

#define THUMB_BOX 320
#define MEDIUM_BOX 1280

/* ImageMagick's resource limits come from its policy files, and a limit set
 * with MagickSetResourceLimit can only lower them.  Debian's own policy
 * (/etc/ImageMagick-6/policy.xml) caps the pixel cache at 256 MiB of memory,
 * 512 MiB of map and 1 GiB of disk.  A 49 MP picture is 392-490 MB of pixel
 * cache (8-10 bytes a pixel at Q16), so it lands on disk, and the PNG
 * writer's own copy of it (a second 490 MB) no longer fits: the copy fails,
 * the writer writes no row ("No IDATs written"), and - worse - the copy it
 * made is never given back: its 490 MB of map and disk stay counted against
 * the worker for good, so the next large picture on that worker fails at
 * once.  A valid image under the 50 MP limit must succeed, so the app
 * brings its own policy, written at start-up to $TH_VAR_DIR/media/magick
 * and found first through MAGICK_CONFIGURE_PATH (the system's file is still
 * read: its coder and path rules stay in force, its resource values are
 * shadowed by ours).  The pixel cache files go to media/tmp, beside the
 * uploads, not to /tmp.  What one image may take stays bounded per worker
 * (memory, map, disk, area, width, height); how many large images run at
 * once on the host is bounded by upload.c's slots. */
static long long magick_memory, magick_map, magick_disk, image_timeout_ms;

/* The time bound of one image.  ImageMagick 6's own TimeResource counts
 * from process start (useless in a long-lived worker), so image_process
 * sets a deadline and this progress monitor, which every coder and
 * transform calls as it goes (row by row), stops the work past it: the
 * operation fails, the upload is refused, and a leak of the aborted
 * operation is caught by image_resources_held(). */
static uint64_t deadline_ms;
static int timed_out;
static void (*tick_fn)(void *);
static void *tick_ctx;

void image_on_progress(void (*fn)(void *ctx), void *ctx)
{
	tick_fn = fn;
	tick_ctx = ctx;
}

static MagickBooleanType progress(const char *what, const MagickOffsetType offset,
				  const MagickSizeType span, void *ctx)
{
	(void)what;
	(void)offset;
	(void)span;
	(void)ctx;
	if (tick_fn)
		tick_fn(tick_ctx);
	if (deadline_ms && mono_ms() > deadline_ms) {
		timed_out = 1;
		return MagickFalse;
	}
	return MagickTrue;
}

static int policy_write(const char *dir)
{
	char path[4096], tmp[4200];
	FILE *f;
	int rc = -1;

	if (snprintf(path, sizeof(path), "%s/policy.xml", dir) >= (int)sizeof(path) ||
	    snprintf(tmp, sizeof(tmp), "%s/.policy.xml.%d", dir, (int)getpid()) >= (int)sizeof(tmp))
		return -1;
	f = fopen(tmp, "w");
	if (!f) {
		fprintf(stderr, "media: cannot write %s: %s\n", tmp, strerror(errno));
		return -1;
	}
	fprintf(f,
		"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		"<!-- written by th-media at start-up (fcgi-apps/media/image.c) -->\n"
		"<policymap>\n"
		"  <policy domain=\"resource\" name=\"temporary-path\" value=\"%s\"/>\n"
		"  <policy domain=\"resource\" name=\"memory\" value=\"%lldB\"/>\n"
		"  <policy domain=\"resource\" name=\"map\" value=\"%lldB\"/>\n"
		"  <policy domain=\"resource\" name=\"disk\" value=\"%lldB\"/>\n"
		"  <policy domain=\"resource\" name=\"area\" value=\"%lldB\"/>\n"
		"  <policy domain=\"resource\" name=\"width\" value=\"16KP\"/>\n"
		"  <policy domain=\"resource\" name=\"height\" value=\"16KP\"/>\n"
		"  <policy domain=\"delegate\" rights=\"none\" pattern=\"*\"/>\n"
		"  <policy domain=\"coder\" rights=\"none\" pattern=\"*\"/>\n"
		"  <policy domain=\"coder\" rights=\"read|write\" "
		"pattern=\"{GIF,JPEG,PNG,WEBP}\"/>\n"
		"  <policy domain=\"path\" rights=\"none\" pattern=\"@*\"/>\n"
		"</policymap>\n",
		media_cfg.tmp_dir, magick_memory, magick_map, magick_disk, media_cfg.max_pixels);
	if (fclose(f) != 0 || rename(tmp, path) < 0) {
		fprintf(stderr, "media: cannot write %s: %s\n", path, strerror(errno));
		unlink(tmp);
		goto out;
	}
	rc = 0;
out:
	return rc;
}

int image_init(void)
{
	char dir[4096];

	/* in memory, a 49 MP PNG took ~10 s here; in a disk cache (Debian's
	 * 256 MiB) 43-55 s: 1 GiB holds one such picture and the PNG writer's
	 * copy.  upload.c lets only a few large images run at once per host. */
	magick_memory = cfg_int("TH_MEDIA_MAGICK_MEMORY", 1LL << 30, 16LL << 20, 64LL << 30);
	magick_map = cfg_int("TH_MEDIA_MAGICK_MAP", 1LL << 30, 16LL << 20, 64LL << 30);
	/* a 50 MP picture at 10 bytes a pixel, three times (the decoded image,
	 * the PNG writer's copy, the variant being made), and room to spare */
	magick_disk = cfg_int("TH_MEDIA_MAGICK_DISK", 3LL << 30, 64LL << 20, 1LL << 40);
	/* a 49 MP PNG takes ~8 s on one core of the benchmark machine */
	image_timeout_ms = cfg_int("TH_MEDIA_IMAGE_TIMEOUT_MS", 60000, 100, 3600000);
	if (snprintf(dir, sizeof(dir), "%s/media/magick", media_cfg.var_dir) >= (int)sizeof(dir) ||
	    (mkdir(dir, 0700) < 0 && errno != EEXIST) || policy_write(dir) < 0) {
		fprintf(stderr, "media: cannot prepare %s for ImageMagick's policy\n", dir);
		return -1;
	}
	if (setenv("MAGICK_CONFIGURE_PATH", dir, 1) < 0 ||
	    setenv("MAGICK_TEMPORARY_PATH", media_cfg.tmp_dir, 1) < 0)
		return -1;
	MagickWandGenesis();
	/* Limits per worker.  Width and height refuse absurd headers; memory,
	 * map and disk bound the pixel cache; one thread: workers are processes
	 * and a pool of them already uses the cores. */
	if (MagickSetResourceLimit(WidthResource, (MagickSizeType)cfg_int("TH_MEDIA_MAX_WIDTH",
									  16384, 1, 1 << 20)) ==
		    MagickFalse ||
	    MagickSetResourceLimit(HeightResource, (MagickSizeType)cfg_int("TH_MEDIA_MAX_HEIGHT",
									   16384, 1, 1 << 20)) ==
		    MagickFalse ||
	    MagickSetResourceLimit(AreaResource, (MagickSizeType)media_cfg.max_pixels) ==
		    MagickFalse ||
	    MagickSetResourceLimit(MemoryResource, (MagickSizeType)magick_memory) == MagickFalse ||
	    MagickSetResourceLimit(MapResource, (MagickSizeType)magick_map) == MagickFalse ||
	    MagickSetResourceLimit(DiskResource, (MagickSizeType)magick_disk) == MagickFalse ||
	    MagickSetResourceLimit(ListLengthResource, IMAGE_FRAMES_MAX) == MagickFalse ||
	    MagickSetResourceLimit(ThreadResource, 1) == MagickFalse) {
		fprintf(stderr, "media: cannot set ImageMagick resource limits\n");
		return -1;
	}
	/* our policy must have been the one read: otherwise the system's caps
	 * stand and large valid images fail as described above */
	if ((long long)MagickGetResourceLimit(DiskResource) < magick_disk)
		log_warn("image: ImageMagick's disk limit is %llu bytes, not %lld: another policy "
			 "file won; images over ~30 megapixels may fail",
			 (unsigned long long)MagickGetResourceLimit(DiskResource), magick_disk);
	/* TimeResource is left alone: in ImageMagick 6 it counts from process
	 * start, so a long-lived worker would refuse every image after it.
	 * TH_MEDIA_IMAGE_TIMEOUT_MS bounds one image instead (progress()). */
	return 0;
}

void image_fini(void)
{
	MagickWandTerminus();
}

int image_resources_held(void)
{
	return MagickGetResource(MemoryResource) != 0 || MagickGetResource(MapResource) != 0 ||
	       MagickGetResource(DiskResource) != 0;
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
			log_info("image: %s",
				 img->exception.reason ? img->exception.reason : "corrupt");
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

/* w (one frame) scaled in place to fit box x box, never enlarged, then
 * written as coder.  In place, not on a copy: a copy of a 50 MP picture is
 * another 400-500 MB of pixel cache, and the variants are made largest
 * first (medium, then thumb from the medium), so none needs the original
 * pixels again. */
static int write_variant(MagickWand *w, int box, const char *coder, const char *mime,
			 struct img_file *f)
{
	size_t cw = MagickGetImageWidth(w), ch = MagickGetImageHeight(w), nw, nh;

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
		if (MagickThumbnailImage(w, nw, nh) == MagickFalse) {
			wand_error(w, "resize");
			return -1;
		}
	}
	if (MagickStripImage(w) == MagickFalse) {
		wand_error(w, "strip");
		return -1;
	}
	return write_file(w, coder, mime, 0, f);
}

/* A PNG's original without re-encoding it: its chunks copied, but only
 * those that make the picture (IHDR, PLTE, IDAT, IEND) and say how to show
 * it (tRNS, gAMA, cHRM, sRGB, sBIT, pHYs, bKGD); text (tEXt, zTXt, iTXt),
 * EXIF (eXIf), ICC profiles (iCCP), times, animation and private chunks go.
 * Re-encoding a 49 MP PNG is ~40% of its processing; the copy takes
 * milliseconds.  Only for a PNG that decoded whole (so its structure held)
 * and needs no rotation.  0, or -1 (the caller re-encodes instead). */
#define PNG_COPY_BUF 65536

static int png_keep(const unsigned char type[4])
{
	static const char *const keep[] = {"IHDR", "PLTE", "IDAT", "IEND", "tRNS", "gAMA",
					   "cHRM", "sRGB", "sBIT", "pHYs", "bKGD"};
	size_t i;

	for (i = 0; i < sizeof(keep) / sizeof(keep[0]); i++)
		if (memcmp(type, keep[i], 4) == 0)
			return 1;
	return 0;
}

static int png_copy_stripped(const char *src, const char *dst)
{
	static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
	unsigned char head[8], *buf = NULL;
	FILE *in = fopen(src, "rb"), *out = NULL;
	unsigned long long left;
	int rc = -1, seen_end = 0, chunks = 0;

	if (!in)
		goto out;
	out = fopen(dst, "wb");
	buf = malloc(PNG_COPY_BUF);
	if (!out || !buf || fread(head, 1, 8, in) != 8 || memcmp(head, sig, 8) != 0 ||
	    fwrite(sig, 1, 8, out) != 8)
		goto out;
	while (!seen_end && chunks++ < 10000000) {
		unsigned long len;
		int keep;

		if (fread(head, 1, 8, in) != 8)
			goto out; /* no IEND */
		len = ((unsigned long)head[0] << 24) | ((unsigned long)head[1] << 16) |
		      ((unsigned long)head[2] << 8) | head[3];
		if (len > 0x7fffffffUL)
			goto out;
		keep = png_keep(head + 4);
		seen_end = memcmp(head + 4, "IEND", 4) == 0;
		if (keep && fwrite(head, 1, 8, out) != 8)
			goto out;
		for (left = (unsigned long long)len + 4; left > 0;) { /* data and CRC */
			size_t n = left > PNG_COPY_BUF ? PNG_COPY_BUF : (size_t)left;

			if (fread(buf, 1, n, in) != n || (keep && fwrite(buf, 1, n, out) != n))
				goto out;
			left -= n;
		}
	}
	if (seen_end && fflush(out) == 0)
		rc = 0;
out:
	free(buf);
	if (in)
		fclose(in);
	if (out && fclose(out) != 0)
		rc = -1;
	return rc;
}

/* The original of a PNG by png_copy_stripped, into f.  0 or -1. */
static int png_original(const char *src, MagickWand *w, struct img_file *f)
{
	if (tmp_file(f->path) < 0)
		return -1;
	if (png_copy_stripped(src, f->path) < 0) {
		unlink(f->path);
		f->path[0] = '\0';
		return -1;
	}
	f->mime = "image/png";
	MagickSetFirstIterator(w);
	f->width = (int)MagickGetImageWidth(w);
	f->height = (int)MagickGetImageHeight(w);
	return media_sha256_file(f->path, f->sha256, &f->size);
}

/* Pixels of every frame of the image at target, from its header alone. */
static int ping_pixels(MagickWand *w, const char *target, unsigned long long *pixels)
{
	size_t i, n;

	*pixels = 0;
	if (read_failed(w, MagickPingImage(w, target))) {
		wand_error(w, "ping");
		return -1;
	}
	n = MagickGetNumberImages(w);
	for (i = 0; i < n; i++) {
		MagickSetIteratorIndex(w, (ssize_t)i);
		*pixels += (unsigned long long)MagickGetImageWidth(w) * MagickGetImageHeight(w);
	}
	return 0;
}

/* The pixels of every frame of src, from its header alone, into *pixels;
 * w is left empty for the decode.  A WebP is sized by libwebp's demuxer
 * alone (webpsize.c: at least one frame, none decoded): ImageMagick's ping
 * of a WebP decodes every frame, so it would cost as much as the read that
 * follows.  Any other type is pinged, and must have a frame and a pixel.
 * 0, or -1 when the header cannot be read. */
static int header_pixels(MagickWand *w, const char *target, const char *mime, const char *src,
			 unsigned long long *pixels)
{
	if (strcmp(mime, "image/webp") == 0)
		return webpsize_pixels(src, pixels) == 0 && *pixels > 0 ? 0 : -1;
	if (ping_pixels(w, target, pixels) < 0 || MagickGetNumberImages(w) == 0 || *pixels == 0)
		return -1;
	ClearMagickWand(w);
	MagickSetProgressMonitor(w, progress, NULL); /* the clear dropped it */
	return 0;
}

static void wand_cleanup(void *w)
{
	DestroyMagickWand(w);
}

/* Hands w (or NULL) to arena a (DestroyMagickWand when it resets); NULL when
 * w was NULL or memory is short (then w is destroyed). */
static MagickWand *wand_own(struct arena *a, MagickWand *w)
{
	if (!w)
		return NULL;
	return arena_defer(a, wand_cleanup, w) == 0 ? w : NULL;
}

enum th_err image_pixels(struct arena *a, const char *src, const char *mime,
			 unsigned long long *pixels)
{
	const char *coder = coder_of(mime);
	char target[4200];
	MagickWand *w;
	enum th_err e = TH_EVALIDATION;

	*pixels = 0;
	if (!coder)
		return TH_EINTERNAL;
	/* never a WebP to ImageMagick's ping: it decodes (webpsize.c) */
	if (strcmp(mime, "image/webp") == 0)
		return webpsize_pixels(src, pixels) == 0 ? TH_OK : TH_EVALIDATION;
	snprintf(target, sizeof(target), "%s:%s", coder, src);
	w = wand_own(a, NewMagickWand());
	if (!w)
		return TH_EINTERNAL;
	if (ping_pixels(w, target, pixels) == 0)
		e = TH_OK;
	return e;
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

enum th_err image_process(struct arena *a, const char *src, const char *mime, struct img_out *out,
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
	int rotated = 0;
	enum th_err e = TH_EVALIDATION;

	memset(out, 0, sizeof(*out));
	snprintf(msg, msgsize,
		 "the image cannot be read: corrupt, truncated, or beyond the limits "
		 "(50 megapixels, 16384 pixels a side)");
	if (!coder) {
		e = TH_EINTERNAL;
		goto out;
	}
	snprintf(target, sizeof(target), "%s:%s", coder, src);
	w = wand_own(a, NewMagickWand());
	if (!w) {
		e = TH_EINTERNAL;
		goto out;
	}
	/* every image read into w, and every copy of one, reports to progress() */
	deadline_ms = mono_ms() + (uint64_t)image_timeout_ms;
	timed_out = 0;
	MagickSetProgressMonitor(w, progress, NULL);
	/* 1. the header only: how many pixels would decoding make? */
	if (header_pixels(w, target, mime, src, &pixels) < 0)
		goto out;
	if (pixels > (unsigned long long)media_cfg.max_pixels) {
		snprintf(msg, msgsize, "image over %lld megapixels",
			 media_cfg.max_pixels / 1000000);
		goto out;
	}
	/* 2. decode, within the resource limits */
	if (read_failed(w, MagickReadImage(w, target))) {
		wand_error(w, "read");
		goto out;
	}
	MagickResetIterator(w);
	while (MagickNextImage(w) != MagickFalse) {
		OrientationType o = MagickGetImageOrientation(w);

		if (o != UndefinedOrientation && o != TopLeftOrientation)
			rotated = 1;
		if (MagickAutoOrientImage(w) == MagickFalse || MagickStripImage(w) == MagickFalse) {
			wand_error(w, "orient/strip");
			goto out;
		}
	}
	e = TH_EINTERNAL;
	snprintf(msg, msgsize, "cannot process the image");
	/* a PNG that needs no rotation: its chunks, less the metadata; any
	 * other image (or a PNG that cannot be copied so): re-encoded */
	if (!(strcmp(mime, "image/png") == 0 && MagickGetNumberImages(w) == 1 && !rotated &&
	      png_original(src, w, &out->original) == 0)) {
		if (out->original.path[0])
			unlink(out->original.path);
		out->original.path[0] = '\0';
		if (write_file(w, coder, mime, MagickGetNumberImages(w) > 1, &out->original) < 0)
			goto out;
	}
	MagickSetFirstIterator(w);
	if (MagickGetNumberImages(w) > 1) {
		/* an animation: its first frame alone, and the frames go */
		first = wand_own(a, MagickGetImage(w));
		if (!first)
			goto out;
		/* early, to bound memory: the other frames go before the
		 * variants are made */
		arena_release(a, w);
		w = NULL;
	}
	if (write_variant(first ? first : w, MEDIUM_BOX, vcoder, vmime, &out->medium) < 0 ||
	    write_variant(first ? first : w, THUMB_BOX, vcoder, vmime, &out->thumb) < 0)
		goto out;
	e = TH_OK;
	msg[0] = '\0';
out:
	if (timed_out) {
		e = TH_EVALIDATION;
		snprintf(msg, msgsize, "the image takes too long to process (over %lld ms)",
			 image_timeout_ms);
		log_info("image: stopped after %lld ms", image_timeout_ms);
	}
	deadline_ms = 0;
	if (e != TH_OK)
		image_out_unlink(out);
	/* early, to bound memory: the decoded image (up to max_pixels, 8
	 * bytes each) must not stay through the request's storage upload and
	 * database writes */
	if (first)
		arena_release(a, first);
	if (w)
		arena_release(a, w);
	return e;
}
