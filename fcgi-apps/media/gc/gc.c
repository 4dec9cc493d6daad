/* th-media-gc: removes stored media bytes that no media row names any more.
 *
 * Bytes are content-addressed (storage.h): the object "<sha256>" and, for
 * images, "<sha256>.thumb" and "<sha256>.medium" belong to every media row
 * whose sha256 column is that hash.  DELETE /api/media/:id removes them with
 * the last such row, but two paths leave them behind: an upload whose commit
 * failed after the bytes were stored, and a deleted community whose media
 * rows went by ON DELETE CASCADE (the community app never touches the store).
 * This program lists the store through the same interface the app uses
 * (local files or S3 ListObjectsV2) and removes those orphans.
 *
 * Safe against in-flight uploads twice over:
 *  - an upload stores its bytes and inserts its row inside one transaction
 *    that holds pg_advisory_xact_lock(hashtextextended(sha256, 7)) (upload.c;
 *    media.c's delete takes it too).  The collector takes the same lock,
 *    checks for a row again and deletes under it, so it never removes bytes
 *    whose row is about to be committed, nor races a delete;
 *  - and it only looks at objects older than a grace period
 *    (TH_MEDIA_GC_GRACE), so anything stored recently is left alone whatever
 *    happens elsewhere (a restore that copies bytes before rows, a clock
 *    skew between hosts, a future code path without the lock).
 * It also removes the upload temporaries a killed worker left in
 * $TH_VAR_DIR/media/tmp (up-*, img-*, vid-*, magick-*), once older than
 * TH_MEDIA_GC_TMP_GRACE.
 *
 * --erased: instead, the bytes of erased accounts (DELETE /api/auth/me,
 * account_erase() of migration 0032 queues their hashes in media_erasures):
 * each queued hash whose bytes no media row names any more is removed at
 * once, without the grace period (the rows went in a committed
 * transaction, and the same lock as above keeps a new upload of the same
 * bytes safe), then dequeued.  Run every minute (townhall-media-erase.timer):
 * an erasure's bytes are gone within a minute.  At most TH_MEDIA_GC_MAX
 * hashes a run.
 *
 * Usage: th-media-gc [--dry-run] [--erased]   (scripts/media-gc sets the environment)
 * Environment: the media app's (TH_VAR_DIR, TH_DB_CONNINFO, TH_MEDIA_STORAGE,
 * TH_S3_*), and
 *   TH_MEDIA_GC_GRACE      seconds an object is left alone, default 86400
 *   TH_MEDIA_GC_TMP_GRACE  same for upload temporaries, default 86400 (>= 600:
 *                          an upload never lasts that long, nginx gives it 300 s)
 *   TH_MEDIA_GC_MAX        objects looked at in one run, default 10000000
 *   TH_MEDIA_GC_SECONDS    a run stops after this long, default 3600
 * Prints one summary line; exit 0, or 1 when something failed (the rest of
 * the run still happened: a failed object is simply tried again next run). */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "db.h"
#include "log.h"
#include "media.h"
#include "storage.h"

struct gc {
	int dry_run;
	long long grace, tmp_grace;
	time_t now, deadline;
	long long listed, removed, removed_bytes, referenced, young, foreign, failed;
	long long tmp_removed;
	int stopped_by_time;
	int db_down;
};

/* The hash an object key belongs to: "<sha>" or "<sha>.thumb|.medium".
 * 0 and sha filled, or -1 for a name that is none of ours. */
static int key_sha(const char *key, char sha[MEDIA_SHA_HEX + 1])
{
	size_t n = strlen(key);

	if (n < MEDIA_SHA_HEX || strspn(key, "0123456789abcdef") < MEDIA_SHA_HEX)
		return -1;
	if (n != MEDIA_SHA_HEX && strcmp(key + MEDIA_SHA_HEX, ".thumb") != 0 &&
	    strcmp(key + MEDIA_SHA_HEX, ".medium") != 0)
		return -1;
	memcpy(sha, key, MEDIA_SHA_HEX);
	sha[MEDIA_SHA_HEX] = '\0';
	return 0;
}

/* 1: a media row names sha; 0: none; -1: the database failed. */
static int referenced(const char *sha)
{
	const char *p[] = {sha};
	struct db_res *r = db_exec(DB_PRIMARY,
				   "SELECT EXISTS (SELECT 1 FROM media WHERE sha256 = $1)", 1, p);
	int rc = -1;

	if (!r) {
		log_error("media-gc: %s", db_last_error());
		goto out;
	}
	rc = strcmp(db_res_get(r, 0, 0), "t") == 0;
out:
	db_res_free(r);
	return rc;
}

/* Under the upload/delete lock of sha: check again that no row names it,
 * then delete the object.  1 removed, 0 kept (a row appeared), -1 failed. */
static int remove_locked(struct gc *g, const char *key, const char *sha)
{
	const char *p[] = {sha};
	struct db_res *r = NULL;
	int ref, rc = -1;
	enum th_err e;

	if (db_begin() < 0) {
		log_error("media-gc: begin: %s", db_last_error());
		return -1; /* no transaction to end */
	}
	r = db_exec(DB_PRIMARY, "SELECT pg_advisory_xact_lock(hashtextextended($1, 7))", 1, p);
	if (!r) {
		log_error("media-gc: lock: %s", db_last_error());
		goto out;
	}
	ref = referenced(sha);
	if (ref != 0) {
		rc = ref < 0 ? -1 : 0;
		goto out;
	}
	if (g->dry_run) {
		rc = 1;
		goto out;
	}
	e = storage->del(key);
	if (e != TH_OK && e != TH_ENOTFOUND) {
		log_error("media-gc: delete %s: %s", key, th_strerror(e));
		goto out;
	}
	rc = 1;
out:
	db_res_free(r);
	/* nothing was written: the transaction only held the lock */
	db_rollback();
	return rc;
}

static int on_object(void *ctx, const struct storage_obj *o)
{
	struct gc *g = ctx;
	char sha[MEDIA_SHA_HEX + 1];
	int rc;

	if (time(NULL) >= g->deadline) {
		g->stopped_by_time = 1;
		return 1;
	}
	g->listed++;
	if (key_sha(o->key, sha) < 0) {
		g->foreign++;
		return 0;
	}
	/* a clock ahead of ours counts as young, not as old */
	if (o->mtime > g->now - g->grace) {
		g->young++;
		return 0;
	}
	/* most objects are referenced: one index lookup, no lock */
	rc = referenced(sha); /* 1 referenced, 0 not, -1 failed */
	if (rc == 0) {
		int r = remove_locked(g, o->key, sha);

		rc = r == 1 ? 2 : r == 0 ? 1 : -1; /* 0: a row appeared meanwhile */
	}
	if (rc < 0) {
		g->failed++;
		/* the database is gone: every other object would fail the same way */
		if (db_ping(DB_PRIMARY) < 0) {
			g->db_down = 1;
			return 1;
		}
		return 0;
	}
	if (rc == 1) {
		g->referenced++;
		return 0;
	}
	g->removed++;
	g->removed_bytes += o->size > 0 ? o->size : 0;
	log_info("media-gc: %s %s (%lld bytes, stored %lld s ago): no media row names it",
		 g->dry_run ? "would remove" : "removed", o->key, o->size,
		 (long long)(g->now - o->mtime));
	return 0;
}

/* --erased: the queued hashes, oldest first, at most max.  Each one's three
 * keys go under its lock (remove_locked; a missing key is no failure), then
 * the hash leaves the queue, also when a row names it again (then the bytes
 * are someone's and stay). */
static void erase_queued(struct gc *g, long long max)
{
	static const char *const suffix[] = {"", ".thumb", ".medium"};
	char lim[24], key[MEDIA_SHA_HEX + 16];
	const char *pl[] = {lim};
	struct db_res *r;
	int i, k, n, ok;

	snprintf(lim, sizeof(lim), "%lld", max);
	r = db_exec(DB_PRIMARY,
		    "SELECT sha256 FROM media_erasures ORDER BY queued_at, sha256 LIMIT $1", 1, pl);
	if (!r) {
		log_error("media-gc: erasures: %s", db_last_error());
		g->failed++;
		return;
	}
	n = db_res_rows(r);
	for (i = 0; i < n && time(NULL) < g->deadline; i++) {
		const char *sha = db_res_get(r, i, 0);
		const char *p[] = {sha};

		g->listed++;
		for (k = 0, ok = 1; k < 3 && ok; k++) {
			snprintf(key, sizeof(key), "%s%s", sha, suffix[k]);
			ok = remove_locked(g, key, sha) >= 0;
		}
		if (!ok) {
			g->failed++;
			continue;
		}
		g->removed++;
		log_info("media-gc: %s the bytes of erased medium %s",
			 g->dry_run ? "would remove" : "removed", sha);
		if (!g->dry_run)
			db_res_free(db_exec(DB_PRIMARY,
					    "DELETE FROM media_erasures WHERE sha256 = $1", 1, p));
	}
	db_res_free(r);
}

/* Upload temporaries (upload.c "up-XXXXXX", image.c "img-XXXXXX", video.c
 * "vid-XXXXXX", and ImageMagick's pixel cache files "magick-*", which
 * image.c's policy puts here) older than tmp_grace: a worker killed
 * mid-upload never reached its cleanup. */
static void clean_tmp(struct gc *g)
{
	char p[sizeof(media_cfg.tmp_dir) + 300];
	DIR *d = opendir(media_cfg.tmp_dir);
	struct dirent *e;
	struct stat st;
	long long seen = 0;

	if (!d) {
		if (errno != ENOENT) {
			log_error("media-gc: opendir %s: %s", media_cfg.tmp_dir, strerror(errno));
			g->failed++;
		}
		return;
	}
	/* bounded like the objects: a directory of millions is looked at in runs */
	while ((e = readdir(d)) != NULL && seen++ < 1000000) {
		if (strncmp(e->d_name, "up-", 3) != 0 && strncmp(e->d_name, "img-", 4) != 0 &&
		    strncmp(e->d_name, "vid-", 4) != 0 && strncmp(e->d_name, "magick-", 7) != 0)
			continue;
		snprintf(p, sizeof(p), "%s/%s", media_cfg.tmp_dir, e->d_name);
		if (lstat(p, &st) < 0 || !S_ISREG(st.st_mode) ||
		    st.st_mtime > g->now - g->tmp_grace)
			continue;
		if (!g->dry_run && unlink(p) < 0) {
			if (errno != ENOENT) {
				log_error("media-gc: unlink %s: %s", p, strerror(errno));
				g->failed++;
			}
			continue;
		}
		g->tmp_removed++;
		log_info("media-gc: %s upload temporary %s (%lld s old)",
			 g->dry_run ? "would remove" : "removed", e->d_name,
			 (long long)(g->now - st.st_mtime));
	}
	closedir(d);
}

int main(int argc, char **argv)
{
	struct gc g = {0};
	long long max, seconds;
	enum th_err e;
	const char *pg;
	int rc = 0, erased = 0;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--dry-run") == 0) {
			g.dry_run = 1;
		} else if (strcmp(argv[i], "--erased") == 0) {
			erased = 1;
		} else {
			fprintf(stderr, "usage: th-media-gc [--dry-run] [--erased]\n");
			return 2;
		}
	}
	log_init("media-gc");
	if (media_settings_load() < 0)
		return 2;
	g.grace = cfg_int("TH_MEDIA_GC_GRACE", 86400, 0, 365LL * 86400);
	g.tmp_grace = cfg_int("TH_MEDIA_GC_TMP_GRACE", 86400, 600, 365LL * 86400);
	max = cfg_int("TH_MEDIA_GC_MAX", 10000000, 1, 1LL << 40);
	seconds = cfg_int("TH_MEDIA_GC_SECONDS", 3600, 1, 7 * 86400);
	pg = cfg_str("TH_DB_CONNINFO", NULL);
	if (!pg) {
		fprintf(stderr, "media-gc: TH_DB_CONNINFO is not set\n");
		return 2;
	}
	if (db_init(pg, NULL, (long)cfg_int("TH_DB_STATEMENT_TIMEOUT_MS", 5000, 0, 600000)) < 0 ||
	    storage_select() < 0)
		return 2;
	/* no object is looked at while the database cannot say what is referenced */
	if (db_ping(DB_PRIMARY) < 0) {
		fprintf(stderr, "media-gc: the database does not answer: %s\n", db_last_error());
		db_close();
		storage->fini();
		return 1;
	}
	g.now = time(NULL);
	g.deadline = g.now + (time_t)seconds;
	if (erased) {
		erase_queued(&g, max);
		printf("media-gc: %s store: erased accounts' media: %s %lld of %lld queued; %lld "
		       "failed\n",
		       storage->name, g.dry_run ? "would remove" : "removed", g.removed, g.listed,
		       g.failed);
		rc = g.failed ? 1 : 0;
		goto out;
	}
	e = storage->list(on_object, &g, max);
	if (e != TH_OK) {
		log_error("media-gc: listing the %s store failed: %s", storage->name,
			  th_strerror(e));
		rc = 1;
	}
	clean_tmp(&g);
	/* a bound reached: objects were left unlooked at, the next run goes on */
	if (g.failed || g.db_down || g.stopped_by_time || g.listed >= max)
		rc = 1;
	printf("media-gc: %s store: %lld objects listed%s; %s %lld (%lld bytes); kept %lld "
	       "referenced, %lld within the grace period of %lld s, %lld not ours; %lld "
	       "failed%s%s; "
	       "upload temporaries %s: %lld\n",
	       storage->name, g.listed, g.listed >= max ? " (TH_MEDIA_GC_MAX reached)" : "",
	       g.dry_run ? "would remove" : "removed", g.removed, g.removed_bytes, g.referenced,
	       g.young, g.grace, g.foreign, g.failed, g.db_down ? ", stopped: database down" : "",
	       g.stopped_by_time ? ", stopped: TH_MEDIA_GC_SECONDS reached" : "",
	       g.dry_run ? "that would go" : "removed", g.tmp_removed);
out:
	db_close();
	storage->fini();
	return rc;
}
