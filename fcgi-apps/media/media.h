/* The media app's internal interfaces (never included by another app).
 *
 * An upload goes: upload.c streams the body (raw, or the `file` part of a
 * multipart body, multipart.c) to a temporary file while hashing it; detect.c
 * names its type from the bytes; image.c re-encodes images (orientation
 * applied, metadata stripped) and makes the variants; storage.h puts the
 * files where downloads find them; media.c inserts the row.  access.c is the
 * one place that decides who may see a medium and signs its URLs. */
#ifndef TH_MEDIA_H
#define TH_MEDIA_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "http.h"
#include "ids.h"
#include "policy.h"

#define MEDIA_SHA_HEX 64
#define MEDIA_FILENAME_MAX 255 /* bytes, after cleaning */
#define MEDIA_CHUNK (64 * 1024)
#define MEDIA_DEFAULT_MAX_BYTES (100LL * 1024 * 1024)
/* nginx lets a multipart body have this much more than the file itself */
#define MEDIA_MULTIPART_SLACK (64 * 1024)

/* ---- settings (main.c, read once at start-up) ---- */
struct media_cfg {
	const char *var_dir;   /* TH_VAR_DIR */
	char tmp_dir[3072];    /* $TH_VAR_DIR/media/tmp */
	long long max_bytes;   /* TH_MEDIA_MAX_BYTES: one upload */
	long long quota_bytes; /* TH_MEDIA_QUOTA_BYTES: one user's media */
	long long url_ttl;     /* TH_MEDIA_URL_TTL: signed URL lifetime, s */
	long long grant_ttl;   /* TH_MEDIA_GRANT_TTL: nginx may reuse a
				  * caller-independent download answer, s */
	long long max_pixels;  /* 50 megapixels (API.md) */
};
extern struct media_cfg media_cfg;
/* Reads the settings above from the environment (settings.c).  0, or -1 with
 * a message on stderr. */
int media_settings_load(void);

/* ---- multipart.c: a push parser for multipart/form-data ---- */

/* Calls on_file for the bytes of the part named `file`, in order, as they
 * arrive; everything else is skipped.  Never buffers more than a header
 * block (8 KiB) and a delimiter. */
typedef int (*mp_data_fn)(void *ctx, const char *buf, size_t n);

enum mp_state { MP_PREAMBLE, MP_AFTER_DELIM, MP_HEADERS, MP_BODY, MP_DONE, MP_ERROR };

struct mp {
	char delim[80]; /* "\r\n--" boundary */
	size_t dlen;
	size_t match; /* bytes of delim matched so far */
	enum mp_state state;
	char hdr[8192]; /* a part's header block */
	size_t hlen;
	int in_file;        /* the current part is `file` */
	int saw_file;       /* a `file` part ended */
	char filename[512]; /* its filename="" (raw, uncleaned), or "" */
	char after[2];
	size_t nafter;
	mp_data_fn on_file;
	void *ctx;
	const char *error; /* why MP_ERROR (static text) */
};

/* Reads the boundary from a Content-Type value.  0, or -1 when it is not
 * multipart/form-data with a usable boundary (1..70 chars). */
int mp_boundary(const char *content_type, char *out, size_t outsize);
void mp_init(struct mp *p, const char *boundary, mp_data_fn on_file, void *ctx);
/* Feeds n bytes.  0, or -1 when the body is malformed or on_file failed
 * (p->error says which). */
int mp_feed(struct mp *p, const char *buf, size_t n);
/* 0 when the body ended well and held a `file` part; -1 otherwise. */
int mp_finish(struct mp *p);

/* ---- detect.c: libmagic ---- */
int detect_init(void);
void detect_fini(void);
/* The mime and kind of the file at path, from its content, within the
 * allow-list of API.md (static strings).  TH_EUNSUPPORTED otherwise;
 * TH_EINTERNAL when libmagic fails. */
enum th_err detect_file(const char *path, const char **mime, const char **kind);

/* ---- image.c: MagickWand ---- */
struct img_file {
	char path[4096];  /* a temporary file the caller owns (unlinks) */
	const char *mime; /* static */
	long long size;
	char sha256[MEDIA_SHA_HEX + 1];
	int width, height;
};
struct img_out {
	struct img_file original; /* re-encoded: oriented, metadata stripped */
	struct img_file thumb;    /* fits 320x320 */
	struct img_file medium;   /* fits 1280x1280 */
};
/* Writes the app's ImageMagick policy ($TH_VAR_DIR/media/magick), then
 * starts MagickWand with the limits of image.c.  0, or -1 with a message. */
int image_init(void);
void image_fini(void);
/* Frames an image may have (ImageMagick's list limit, image.c). */
#define IMAGE_FRAMES_MAX 1000
/* The pixels of every frame of the image at src, from its header alone (no
 * decoding; a WebP from its container: webpsize.c).  TH_EVALIDATION when the
 * header cannot be read.  The wand it reads with belongs to arena a (the
 * request's). */
enum th_err image_pixels(struct arena *a, const char *src, const char *mime,
			 unsigned long long *pixels);
/* webpsize.c: the pixels of every frame of the WebP at path, from its RIFF
 * chunks (libwebp's demuxer, nothing decoded); over IMAGE_FRAMES_MAX frames:
 * ~0.  0, or -1 when it is no WebP the demuxer reads. */
int webpsize_pixels(const char *path, unsigned long long *pixels);
/* 1 when ImageMagick still counts pixel cache (memory, map or disk) as held
 * although no image is alive: a coder's error path leaked a copy.  The
 * accounting is per process and cannot be reset, so the worker should exit
 * after its reply (upload.c) and let multiwatch start a fresh one. */
int image_resources_held(void);
/* Checks the image at src (pixels counted from its header before decoding:
 * a ping, or webpsize_pixels() for a WebP, which is never pinged), then
 * writes the three files of out into media_cfg.tmp_dir.  TH_EVALIDATION with
 * a message for a corrupt, truncated or too large image; TH_EINTERNAL
 * otherwise.  On failure no file of out is left behind.  Its wands belong to
 * arena a (the request's); the decoded image is released before it returns
 * (the request's next steps do not hold it). */
enum th_err image_process(struct arena *a, const char *src, const char *mime, struct img_out *out,
			  char *msg, size_t msgsize);
void image_out_unlink(struct img_out *out);
/* fn(ctx) is called now and then while image_process() works (from
 * ImageMagick's progress monitor, row by row): budget_keepalive keeps the
 * image's holds alive through a long image.  NULL: nothing is called. */
void image_on_progress(void (*fn)(void *ctx), void *ctx);

/* ---- video.c: ffmpeg, metadata stripped by a stream copy ---- */
int video_init(void);
/* Writes src (an MP4 or WebM) without its global, stream and chapter
 * metadata (GPS location among them) to a new temporary file whose path goes
 * into out (the caller unlinks it).  TH_EVALIDATION with a message when
 * ffmpeg cannot read it or takes too long; TH_EUNAVAILABLE when ffmpeg
 * cannot be run.  On failure out is "" and nothing is left behind. */
enum th_err video_strip(const char *src, const char *mime, char out[4096], char *msg,
			size_t msgsize);

/* ---- budget.c: images processed at once, per user and per host ---- */
struct budget {
	struct http_req *req;       /* whose holds these are (budget_keepalive) */
	char job[96];               /* the holds' name in Redis: host:pid:seq */
	int user_taken;             /* holds one of the user's places */
	int heavy_taken;            /* holds the user's large-image place */
	long long heavy_mp;         /* megapixels of the user's budget it took */
	int slot;                   /* host slot (slots.h), -1: none */
	unsigned long long keep_at; /* mono ms of the next keepalive */
};
int budget_init(void);
void budget_fini(void);
/* One of the caller's places (TH_MEDIA_IMAGE_PER_USER at once, Redis),
 * b filled from scratch.  0, or -1 when replied: 429 over the limit, 503
 * when Redis is out. */
int budget_user_take(struct http_req *req, struct budget *b);
/* For an image of `pixels`, when it is large: the user's large-image place
 * (one at a time, TH_MEDIA_HEAVY_MP_PER_MIN) and a host-wide slot, waiting
 * for both until TH_MEDIA_HEAVY_WAIT_MS.  0, or -1 when replied: 429 with
 * Retry-After, 503 when Redis is out. */
int budget_host_take(struct http_req *req, unsigned long long pixels, struct budget *b);
/* Keeps b's holds from lapsing while the image is processed; cheap enough
 * to call very often (it talks to Redis once a quarter of a hold at most).
 * budget is a struct budget (the shape image_on_progress() wants). */
void budget_keepalive(void *budget);
/* Gives back whatever b holds (safe on a zeroed or released b). */
void budget_release(struct http_req *req, struct budget *b);

/* ---- hashing helpers (upload.c) ---- */
/* SHA-256 of a file as lower-case hex; size into *size.  0 or -1. */
int media_sha256_file(const char *path, char hex[MEDIA_SHA_HEX + 1], long long *size);

/* ---- access.c ---- */
struct media_row {
	char id[IDS_UUID_LEN + 1];
	int64_t owner_id;
	int64_t community_id; /* 0: profile media */
	int is_public;        /* profile media, or a public community's */
	struct community cm;  /* its community and the caller's standing
				    * there (cm.id 0: profile media) */
	const char *kind, *mime, *sha256, *filename, *variants, *created_at;
	long long size;
	int has_dims;
	int width, height;
};

int access_init(void);
/* Loads the medium `id` (a path parameter value) for the caller.  Replies
 * 404 and returns -1 when it is malformed, does not exist or the caller may
 * not see it (API.md: "who may see it": its owner; anyone for profile media
 * and a public community's; the members of a private community).  The row's
 * strings live in the request's arena. */
int media_load_visible(struct http_req *req, const char *id, struct media_row *m);
/* Same, no visibility rule (404 only when absent).  -1 when replied. */
int media_load(struct http_req *req, const char *id, struct media_row *m);
/* 1 when the caller may see m (rule above), 0 otherwise. */
int media_visible(const struct http_req *req, const struct media_row *m);
/* The URL of a variant: plain for public media, signed (?exp=&sig=) for
 * private ones.  Into the arena; NULL when out of memory. */
char *media_url(struct http_req *req, const struct media_row *m, const char *variant);
/* Checks ?exp=&sig= for id/variant.  1: valid; 0: absent; -1: present but
 * expired or altered. */
int media_sig_check(struct http_req *req, const char *id, const char *variant);

/* ---- media.c ---- */
/* The media JSON of API.md for m (a new object), NULL when out of memory. */
struct json_object *media_json(struct http_req *req, const struct media_row *m);
/* Cleans a client filename: the last path component, no control bytes, no
 * quotes or backslashes, at most MEDIA_FILENAME_MAX bytes of whole UTF-8
 * characters; "file" when nothing is left.  Into the arena. */
char *media_clean_filename(struct arena *a, const char *name);
/* Content-Disposition ("inline" or "attachment") for a cleaned filename:
 * an ASCII fallback and the UTF-8 name (RFC 6266 / 5987), ~480 bytes at
 * most, into the arena; NULL when out of memory. */
char *media_disposition(struct arena *a, const char *type, const char *name);

/* handlers */
void upload_create(struct http_req *req);
void media_get(struct http_req *req);
void media_delete(struct http_req *req);
void media_download(struct http_req *req); /* download.c */

int upload_init(void);

#endif
