/* storage: where media bytes live, behind one small interface.
 *
 * Objects are named by key: "<sha256>" for an original, "<sha256>.thumb" and
 * "<sha256>.medium" for its variants (the sha256 of the original), so equal
 * files are stored once.  TH_MEDIA_STORAGE picks the backend at start-up:
 *
 *   local (default)  files under $TH_VAR_DIR/media/ab/cd/<key> (ab, cd: the
 *                    key's first two byte pairs), mode 0644 in 0755 dirs so
 *                    nginx's workers (nobody) can send them;
 *   s3               an S3-compatible store through libcurl, requests signed
 *                    by libcurl (CURLOPT_AWS_SIGV4): TH_S3_ENDPOINT,
 *                    TH_S3_BUCKET, TH_S3_REGION, TH_S3_ACCESS_KEY,
 *                    TH_S3_SECRET_KEY, TH_S3_PATH_STYLE (default 1).
 *
 * Every call returns TH_OK, TH_ENOTFOUND (no such object) or
 * TH_EUNAVAILABLE (the store failed or cannot be reached); the backend logs
 * the details. */
#ifndef TH_STORAGE_H
#define TH_STORAGE_H

#include <time.h>

#include "err.h"
#include "http.h"

/* One stored object as list() reports it; key lives only during the call. */
struct storage_obj {
	const char *key;
	long long size;
	time_t mtime; /* when it was stored (S3: LastModified) */
};
/* Called per object: 0 to go on, anything else stops the listing. */
typedef int (*storage_list_fn)(void *ctx, const struct storage_obj *o);

struct storage_ops {
	const char *name;
	int (*init)(void);
	void (*fini)(void);
	/* Stores the file at path under key and consumes it (moved or uploaded,
	 * then removed).  An existing object of that key is kept: same key,
	 * same bytes. */
	enum th_err (*put)(const char *key, const char *path, const char *mime);
	/* Writes the object's bytes [off, off+len) to the file at path; len -1:
	 * to the end. */
	enum th_err (*get)(const char *key, long long off, long long len, const char *path);
	enum th_err (*del)(const char *key);
	/* *size of the object. */
	enum th_err (*head)(const char *key, long long *size);
	/* Sets the reply that makes nginx send the object (status 200 with
	 * X-Accel-Redirect); the caller adds Content-Type and the rest.
	 * -1 when replied with an error. */
	int (*deliver)(struct http_req *req, const char *key);
	/* The object's file for nginx to send itself ("ab/cd/<key>" under
	 * $TH_VAR_DIR/media) into out; -1 when the key is bad or does not fit.
	 * NULL in a backend whose bytes nginx cannot send from disk (S3). */
	int (*file)(const char *key, char *out, size_t size);
	/* Calls fn for every object of the store whose name is a key of ours,
	 * in no set order, at most max of them; fn may del() the object it is
	 * given.  TH_OK (also when fn stopped it), or TH_EUNAVAILABLE.  Used by
	 * th-media-gc only: never on a request's path. */
	enum th_err (*list)(storage_list_fn fn, void *ctx, long long max);
};

extern const struct storage_ops storage_local;
extern const struct storage_ops storage_s3;

/* The backend chosen by TH_MEDIA_STORAGE (set by storage_select at start-up). */
extern const struct storage_ops *storage;

/* Reads TH_MEDIA_STORAGE and initializes that backend; -1 with a message on
 * stderr when misconfigured (settings.c). */
int storage_select(void);

#endif
