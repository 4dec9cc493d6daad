/* access: who may see a medium, and the signed URLs that let an <img src>
 * (which carries no bearer token) fetch a private one.
 *
 * Visibility (API.md "who may see it"):
 *   - its owner, always;
 *   - profile media (no community) and a public community's media: anyone —
 *     like the community's posts, which anyone may read, and like an avatar;
 *     their URLs are plain and cacheable by shared caches;
 *   - a private community's media: its members (banned users are no members).
 *     Everyone else gets 404, as for the community itself.
 *
 * A signed URL ?exp=<unix seconds>&sig=<hex HMAC-SHA256> over
 * "<id>/<variant>/<exp>" with the key in TH_MEDIA_URL_SECRET_FILE (default
 * $TH_VAR_DIR/keys/media-url.secret, made by scripts/stack) grants one
 * variant until exp, whoever holds it.  exp is rounded up to a multiple of
 * the TTL so the URLs of one medium stay the same for a while and browsers
 * can cache the bytes. */
#include <fcntl.h>
#include <json-c/json.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "db.h"
#include "log.h"
#include "media.h"
#include "user.h"

#define SECRET_MIN 32

static unsigned char secret[256];
static size_t secret_len;

int access_init(void)
{
	char dflt[4096];
	const char *path;
	int fd;
	ssize_t n;

	snprintf(dflt, sizeof(dflt), "%s/keys/media-url.secret", media_cfg.var_dir);
	path = cfg_str("TH_MEDIA_URL_SECRET_FILE", dflt);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "media: cannot open the signed-URL secret %s (TH_MEDIA_URL_SECRET_FILE; "
				"scripts/stack creates it): %m\n", path);
		return -1;
	}
	n = read(fd, secret, sizeof(secret));
	close(fd);
	/* a trailing newline is not part of the key */
	while (n > 0 && (secret[n - 1] == '\n' || secret[n - 1] == '\r'))
		n--;
	if (n < SECRET_MIN) {
		fprintf(stderr, "media: the signed-URL secret %s holds fewer than %d bytes\n", path,
			SECRET_MIN);
		return -1;
	}
	secret_len = (size_t)n;
	return 0;
}

static int hex_digit(char ch)
{
	return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F');
}

int media_uuid_ok(const char *s, size_t n)
{
	if (!s || n != MEDIA_UUID_LEN)
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return 0;
		} else if (!hex_digit(s[i])) {
			return 0;
		}
	}
	return 1;
}

static void sign(const char *id, const char *variant, long long exp, char out[65])
{
	unsigned char mac[crypto_auth_hmacsha256_BYTES];
	char msg[128];
	int n = snprintf(msg, sizeof(msg), "%s/%s/%lld", id, variant, exp);
	crypto_auth_hmacsha256_state st;

	crypto_auth_hmacsha256_init(&st, secret, secret_len);
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)msg, (unsigned long long)n);
	crypto_auth_hmacsha256_final(&st, mac);
	sodium_bin2hex(out, 65, mac, sizeof(mac));
}

int media_sig_check(struct http_req *req, const char *id, const char *variant)
{
	const char *exp_s = http_query(req, "exp"), *sig = http_query(req, "sig");
	long long exp;
	char want[65];

	if (!exp_s && !sig)
		return 0;
	if (!exp_s || !sig || cfg_parse_int(exp_s, 0, 253402300799LL, &exp) < 0 ||
	    strlen(sig) != 64)
		return -1;
	if (exp < (long long)time(NULL))
		return -1;
	sign(id, variant, exp, want);
	/* constant time: the comparison must not tell how much of it was right */
	return sodium_memcmp(want, sig, 64) == 0 ? 1 : -1;
}

char *media_url(struct http_req *req, const struct media_row *m, const char *variant)
{
	long long ttl = media_cfg.url_ttl, exp;
	char sig[65];

	if (m->is_public)
		return arena_printf(req->arena, "/media/%s/%s", m->id, variant);
	exp = ((long long)time(NULL) / ttl + 2) * ttl; /* between ttl and 2 ttl ahead */
	sign(m->id, variant, exp, sig);
	return arena_printf(req->arena, "/media/%s/%s?exp=%lld&sig=%s", m->id, variant, exp, sig);
}

int media_visible(const struct http_req *req, const struct media_row *m)
{
	if (req->user_id != 0 && req->user_id == m->owner_id)
		return 1;
	return m->is_public || (m->is_member && !m->banned);
}

enum {
	C_ID, C_OWNER, C_COMMUNITY, C_KIND, C_MIME, C_SIZE, C_SHA, C_WIDTH, C_HEIGHT, C_FILENAME,
	C_VARIANTS, C_CREATED, C_PUBLIC, C_MEMBER, C_BANNED
};

static char *col_dup(struct http_req *req, const struct db_res *r, int col)
{
	return arena_strdup(req->arena, db_res_get(r, 0, col));
}

int media_load(struct http_req *req, const char *id, struct media_row *m)
{
	char uid[24];
	const char *params[2] = {id, uid};
	struct db_res *r;

	memset(m, 0, sizeof(*m));
	if (!id || !media_uuid_ok(id, strlen(id))) {
		http_reply_error(req, TH_ENOTFOUND, "no such media", NULL);
		return -1;
	}
	snprintf(uid, sizeof(uid), "%lld", (long long)req->user_id);
	/* the primary: an uploader reads their upload back at once */
	r = db_exec_or_reply(req, DB_PRIMARY,
			     "SELECT md.id, md.owner_id, md.community_id, md.kind, md.mime, md.size, "
			     "md.sha256, md.width, md.height, md.filename, md.variants, "
			     TH_TIME_SQL("md.created_at") ", "
			     "md.community_id IS NULL OR c.visibility = 'public', "
			     "mb.user_id IS NOT NULL, b.user_id IS NOT NULL "
			     "FROM media md LEFT JOIN communities c ON c.id = md.community_id "
			     "LEFT JOIN memberships mb ON mb.community_id = md.community_id "
			     "AND mb.user_id = $2 "
			     "LEFT JOIN bans b ON b.community_id = md.community_id AND b.user_id = $2 "
			     "WHERE md.id = $1",
			     2, params);
	if (!r)
		return -1;
	if (db_res_rows(r) != 1) {
		db_res_free(r);
		http_reply_error(req, TH_ENOTFOUND, "no such media", NULL);
		return -1;
	}
	snprintf(m->id, sizeof(m->id), "%s", db_res_get(r, 0, C_ID));
	m->owner_id = strtoll(db_res_get(r, 0, C_OWNER), NULL, 10);
	m->community_id = strtoll(db_res_get(r, 0, C_COMMUNITY), NULL, 10);
	m->kind = col_dup(req, r, C_KIND);
	m->mime = col_dup(req, r, C_MIME);
	m->size = strtoll(db_res_get(r, 0, C_SIZE), NULL, 10);
	m->sha256 = col_dup(req, r, C_SHA);
	m->has_dims = !db_res_isnull(r, 0, C_WIDTH);
	m->width = atoi(db_res_get(r, 0, C_WIDTH));
	m->height = atoi(db_res_get(r, 0, C_HEIGHT));
	m->filename = col_dup(req, r, C_FILENAME);
	m->variants = col_dup(req, r, C_VARIANTS);
	m->created_at = col_dup(req, r, C_CREATED);
	m->is_public = strcmp(db_res_get(r, 0, C_PUBLIC), "t") == 0;
	m->is_member = strcmp(db_res_get(r, 0, C_MEMBER), "t") == 0;
	m->banned = strcmp(db_res_get(r, 0, C_BANNED), "t") == 0;
	db_res_free(r);
	if (!m->kind || !m->mime || !m->sha256 || !m->filename || !m->variants || !m->created_at) {
		http_reply_error(req, TH_EINTERNAL, "out of memory", NULL);
		return -1;
	}
	return 0;
}

int media_load_visible(struct http_req *req, const char *id, struct media_row *m)
{
	if (media_load(req, id, m) < 0)
		return -1;
	if (!media_visible(req, m)) {
		http_reply_error(req, TH_ENOTFOUND, "no such media", NULL);
		return -1;
	}
	return 0;
}
