/* storage_local: content-addressed files under $TH_VAR_DIR/media.
 *
 * put() renames the temporary file into place (same file system: tmp/ is a
 * sibling), so a reader never sees half a file.  Downloads are nginx's: the
 * app answers X-Accel-Redirect: /_media/ab/cd/<key> and the internal
 * location (alias $TH_VAR_DIR/media/) sends the file with sendfile, Range
 * and If-Range. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "media.h"
#include "storage.h"

static char root[3200];

static int key_ok(const char *key)
{
	size_t n = strlen(key);

	if (n < 4 || n > 80)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((key[i] >= '0' && key[i] <= '9') || (key[i] >= 'a' && key[i] <= 'z') ||
		      key[i] == '.'))
			return 0;
	return 1;
}

/* "<root>/ab/cd/<key>" (or its directory when dir). */
static int key_path(const char *key, char *out, size_t size, int dir)
{
	int n;

	if (!key_ok(key))
		return -1;
	n = dir ? snprintf(out, size, "%s/%.2s/%.2s", root, key, key + 2)
		: snprintf(out, size, "%s/%.2s/%.2s/%s", root, key, key + 2, key);
	return n > 0 && (size_t)n < size ? 0 : -1;
}

static int mkdir_one(const char *path)
{
	if (mkdir(path, 0750) == 0 || errno == EEXIST)
		return 0;
	log_error("storage: mkdir %s: %s", path, strerror(errno));
	return -1;
}

static int local_init(void)
{
	snprintf(root, sizeof(root), "%s/media", media_cfg.var_dir);
	if (mkdir_one(root) < 0 || mkdir_one(media_cfg.tmp_dir) < 0) {
		fprintf(stderr, "media: cannot create %s or %s\n", root, media_cfg.tmp_dir);
		return -1;
	}
	return 0;
}

static void local_fini(void)
{
}

static enum th_err local_put(const char *key, const char *path, const char *mime)
{
	char dst[4200], dir[4200];
	struct stat st;

	(void)mime;
	if (key_path(key, dst, sizeof(dst), 0) < 0 || key_path(key, dir, sizeof(dir), 1) < 0)
		return TH_EINTERNAL;
	if (stat(dst, &st) == 0) {
		unlink(path); /* the same bytes are there already */
		return TH_OK;
	}
	dir[strlen(dir) - 3] = '\0'; /* root/ab */
	if (mkdir_one(dir) < 0)
		return TH_EUNAVAILABLE;
	dir[strlen(dir)] = '/'; /* root/ab/cd */
	if (mkdir_one(dir) < 0)
		return TH_EUNAVAILABLE;
	/* Private bytes: not for other users of the host.  nginx's workers
	 * read them through the group that scripts/stack gives the media
	 * directories (setgid, so new ones inherit it); a file made elsewhere
	 * takes its directory's group here. */
	if (stat(dir, &st) < 0 || (chown(path, (uid_t)-1, st.st_gid) < 0 && errno != EPERM) ||
	    chmod(path, 0640) < 0 || rename(path, dst) < 0) {
		log_error("storage: %s -> %s: %s", path, dst, strerror(errno));
		return TH_EUNAVAILABLE;
	}
	return TH_OK;
}

static enum th_err local_get(const char *key, long long off, long long len, const char *path)
{
	char src[4200], buf[MEDIA_CHUNK];
	int in = -1, out = -1;
	enum th_err e = TH_EUNAVAILABLE;
	ssize_t n;

	if (key_path(key, src, sizeof(src), 0) < 0)
		return TH_EINTERNAL;
	in = open(src, O_RDONLY | O_CLOEXEC);
	if (in < 0) {
		e = errno == ENOENT ? TH_ENOTFOUND : TH_EUNAVAILABLE;
		goto out;
	}
	out = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (out < 0 || lseek(in, (off_t)off, SEEK_SET) < 0)
		goto out;
	while (len != 0) {
		size_t want = len < 0 || len > (long long)sizeof(buf) ? sizeof(buf) : (size_t)len;

		n = read(in, buf, want);
		if (n < 0)
			goto out;
		if (n == 0)
			break;
		if (write(out, buf, (size_t)n) != n)
			goto out;
		if (len > 0)
			len -= n;
	}
	e = TH_OK;
out:
	if (e == TH_EUNAVAILABLE)
		log_error("storage: get %s: %s", key, strerror(errno));
	if (in >= 0)
		close(in);
	if (out >= 0 && close(out) < 0 && e == TH_OK)
		e = TH_EUNAVAILABLE;
	return e;
}

static enum th_err local_del(const char *key)
{
	char p[4200];

	if (key_path(key, p, sizeof(p), 0) < 0)
		return TH_EINTERNAL;
	if (unlink(p) == 0)
		return TH_OK;
	if (errno == ENOENT)
		return TH_ENOTFOUND;
	log_error("storage: unlink %s: %s", p, strerror(errno));
	return TH_EUNAVAILABLE;
}

static enum th_err local_head(const char *key, long long *size)
{
	char p[4200];
	struct stat st;

	if (key_path(key, p, sizeof(p), 0) < 0)
		return TH_EINTERNAL;
	if (stat(p, &st) < 0)
		return errno == ENOENT ? TH_ENOTFOUND : TH_EUNAVAILABLE;
	*size = (long long)st.st_size;
	return TH_OK;
}

/* "ab/cd/<key>": where key_path puts it, relative to the root. */
static int local_file(const char *key, char *out, size_t size)
{
	int n;

	if (!key_ok(key))
		return -1;
	n = snprintf(out, size, "%.2s/%.2s/%s", key, key + 2, key);
	return n > 0 && (size_t)n < size ? 0 : -1;
}

static int local_deliver(struct http_req *req, const char *key)
{
	char rel[100], uri[128];

	if (local_file(key, rel, sizeof(rel)) < 0) {
		http_reply_error(req, TH_EINTERNAL, NULL, NULL);
		return -1;
	}
	snprintf(uri, sizeof(uri), "/_media/%s", rel);
	http_reply_empty(req, 200);
	http_add_header(req, "X-Accel-Redirect", uri);
	return 0;
}

/* 1 when name is two lower-case hex digits (a level of the tree). */
static int level_ok(const char *name)
{
	for (int i = 0; i < 2; i++)
		if (!((name[i] >= '0' && name[i] <= '9') || (name[i] >= 'a' && name[i] <= 'f')))
			return 0;
	return name[2] == '\0';
}

/* Lists root/ab/cd/<key>: only names key_ok accepts and that sit where
 * key_path puts them (tmp/ and anything else a person left there are not
 * objects).  *left counts down the objects still allowed; 1 when the walk
 * must stop (fn said so, or the bound), -1 on an error. */
static int list_dir(const char *dir, const char *ab, const char *cd, storage_list_fn fn, void *ctx,
		    long long *left)
{
	char p[4300];
	DIR *d = opendir(dir);
	struct dirent *e;
	struct stat st;
	int rc = 0;

	if (!d) {
		log_error("storage: opendir %s: %s", dir, strerror(errno));
		return -1;
	}
	while (rc == 0 && (e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		if (!cd) {
			/* a level: root/ab or root/ab/cd */
			if (!level_ok(e->d_name) || lstat(p, &st) < 0 || !S_ISDIR(st.st_mode))
				continue;
			rc = list_dir(p, ab ? ab : e->d_name, ab ? e->d_name : NULL, fn, ctx, left);
			continue;
		}
		if (!key_ok(e->d_name) || strncmp(e->d_name, ab, 2) != 0 ||
		    strncmp(e->d_name + 2, cd, 2) != 0 || lstat(p, &st) < 0 || !S_ISREG(st.st_mode))
			continue;
		if (*left <= 0) {
			rc = 1;
			break;
		}
		(*left)--;
		{
			struct storage_obj o = {.key = e->d_name,
						.size = (long long)st.st_size,
						.mtime = st.st_mtime};

			if (fn(ctx, &o) != 0)
				rc = 1;
		}
	}
	closedir(d);
	return rc;
}

static enum th_err local_list(storage_list_fn fn, void *ctx, long long max)
{
	long long left = max;

	return list_dir(root, NULL, NULL, fn, ctx, &left) < 0 ? TH_EUNAVAILABLE : TH_OK;
}

const struct storage_ops storage_local = {
	.name = "local",
	.init = local_init,
	.fini = local_fini,
	.put = local_put,
	.get = local_get,
	.del = local_del,
	.head = local_head,
	.deliver = local_deliver,
	.file = local_file,
	.list = local_list,
};
