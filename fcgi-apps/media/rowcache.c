/* rowcache: the Redis copy of a media row, so that a download (every 1 MiB
 * range a player asks for) costs one Redis GET instead of a PostgreSQL query
 * on the primary.
 *
 * Only what never changes after the upload is kept: id, owner, community,
 * kind, size, sha256 (the storage key and ETag), mime, the cleaned filename
 * and the variants' facts.  What can change — the community's visibility,
 * the caller's membership, bans — is never cached: a download that needs it
 * (no signature, not the owner, a community's medium) reads PostgreSQL.
 *
 * The entry, th:media:<id>, is one line per field:
 *
 *     m1 \n id \n owner \n community (0: none) \n kind \n size \n sha256 \n
 *     mime \n filename \n variants (the jsonb text, no newline)
 *
 * Every field is checked on the way in, as if Redis held garbage (a flush, a
 * hand-made key, a version of this format we do not know): anything that
 * does not parse is a miss, and the download reads PostgreSQL and writes the
 * entry again.  The sha256 ends up in a file path and the mime and filename
 * in headers, so their alphabets are checked, not just their presence.
 *
 * Deletion rules (who deletes entries, and why inside the transaction):
 * lib/mediacache.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "log.h"
#include "media.h"
#include "mediacache.h"

#define ROWCACHE_MAGIC "m1"
#define ROWCACHE_FIELDS 10
/* an entry is a few hundred bytes (variants ~300); longer is not ours */
#define ROWCACHE_MAX 2048

static int all_digits(const char *s, size_t max)
{
	size_t n = strlen(s);

	if (n == 0 || n > max)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return 0;
	return 1;
}

static int is_sha_hex(const char *s)
{
	size_t i;

	for (i = 0; s[i]; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return i == MEDIA_SHA_HEX;
}

int media_mime_ok(const char *s)
{
	size_t i;

	for (i = 0; s[i]; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') ||
		      strchr("/.+-", s[i])))
			return 0;
	return i > 0 && i < 128 && strchr(s, '/') != NULL;
}

int media_sha_ok(const char *s)
{
	return is_sha_hex(s);
}

/* What media_clean_filename() leaves: no control bytes, quotes, ; % or path
 * separators, at most MEDIA_FILENAME_MAX bytes. */
static int filename_ok(const char *s)
{
	size_t i;

	for (i = 0; s[i]; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch < 0x20 || ch == 0x7f || strchr("\"';%/\\", ch))
			return 0;
	}
	return i > 0 && i <= MEDIA_FILENAME_MAX;
}

static int kind_ok(const char *s)
{
	return strcmp(s, "image") == 0 || strcmp(s, "video") == 0 || strcmp(s, "audio") == 0 ||
	       strcmp(s, "pdf") == 0;
}

/* Splits buf (NUL-terminated, ours) at newlines into exactly n fields. */
static int split(char *buf, char **f, int n)
{
	int i = 0;

	f[i++] = buf;
	for (char *p = buf; *p; p++) {
		if (*p != '\n')
			continue;
		if (i == n)
			return -1;
		*p = '\0';
		f[i++] = p + 1;
	}
	return i == n ? 0 : -1;
}

static int parse(struct http_req *req, const char *id, const char *val, size_t len,
		 struct media_row *m)
{
	char *buf, *f[ROWCACHE_FIELDS];

	if (len == 0 || len > ROWCACHE_MAX || memchr(val, '\0', len))
		return 0;
	buf = arena_strndup(req->arena, val, len);
	if (!buf || split(buf, f, ROWCACHE_FIELDS) < 0)
		return 0;
	if (strcmp(f[0], ROWCACHE_MAGIC) != 0 || strcmp(f[1], id) != 0 ||
	    !all_digits(f[2], 18) || !all_digits(f[3], 18) || !kind_ok(f[4]) ||
	    !all_digits(f[5], 18) || !is_sha_hex(f[6]) || !media_mime_ok(f[7]) ||
	    !filename_ok(f[8]) || f[9][0] != '{')
		return 0;
	for (const char *p = f[9]; *p; p++)
		if ((unsigned char)*p < 0x20)
			return 0;
	memset(m, 0, sizeof(*m));
	snprintf(m->id, sizeof(m->id), "%s", id);
	m->owner_id = strtoll(f[2], NULL, 10);
	m->community_id = strtoll(f[3], NULL, 10);
	if (m->owner_id <= 0)
		return 0;
	m->kind = f[4];
	m->size = strtoll(f[5], NULL, 10);
	m->sha256 = f[6];
	m->mime = f[7];
	m->filename = f[8];
	m->variants = f[9];
	m->created_at = "";
	/* profile media are public for good; a community's visibility is not
	 * ours to remember */
	m->is_public = m->community_id == 0;
	m->from_cache = 1;
	return 1;
}

int rowcache_get(struct http_req *req, const char *id, struct media_row *m)
{
	char key[MEDIACACHE_KEY_MAX];
	const char *argv[2] = {"GET", key};
	struct cache_reply *r;
	const char *val;
	size_t len;
	int rc;

	if (media_cfg.row_cache_ttl <= 0)
		return 0;
	if (!mediacache_key(key, sizeof(key), id))
		return 0;
	r = cache_cmd(2, argv, NULL);
	if (!r)
		return -1;
	if (cache_reply_type(r) != CACHE_STR) {
		/* nil (a miss), or a key of another type someone made */
		rc = cache_reply_type(r) == CACHE_ERROR ? -1 : 0;
		cache_reply_free(r);
		return rc;
	}
	val = cache_reply_str(r, &len);
	rc = parse(req, id, val, len, m);
	cache_reply_free(r);
	if (rc == 0)
		log_warn("media: the cached row of %s is not well-formed; reading PostgreSQL", id);
	return rc;
}

int rowcache_put(const struct media_row *m)
{
	char key[MEDIACACHE_KEY_MAX], val[ROWCACHE_MAX + 1], ttl[24];
	const char *argv[5] = {"SET", key, val, "EX", ttl};
	struct cache_reply *r;
	int n, ok;

	if (media_cfg.row_cache_ttl <= 0 || !mediacache_key(key, sizeof(key), m->id))
		return -1;
	n = snprintf(val, sizeof(val), ROWCACHE_MAGIC "\n%s\n%lld\n%lld\n%s\n%lld\n%s\n%s\n%s\n%s",
		     m->id, (long long)m->owner_id, (long long)m->community_id, m->kind, m->size,
		     m->sha256, m->mime, m->filename, m->variants);
	if (n < 0 || n > ROWCACHE_MAX)
		return -1; /* not cached: the next download reads PostgreSQL again */
	snprintf(ttl, sizeof(ttl), "%lld", media_cfg.row_cache_ttl);
	r = cache_cmd(5, argv, NULL);
	if (!r)
		return -1;
	ok = cache_reply_type(r) == CACHE_STR;
	cache_reply_free(r);
	return ok ? 0 : -1;
}
