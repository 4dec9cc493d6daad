/* reactions: PUT / DELETE /api/posts/:id/reactions/:emoji, idempotent 204.
 *
 * The emoji is the decoded path parameter, stored as given (no Unicode
 * normalization): 1-32 bytes of valid UTF-8 without control characters
 * (C0, DEL, C1) and without whitespace, so it is safe as a JSON key and in a
 * log line.  A change (a row really inserted or deleted) bumps the feed
 * version: counts live in the cached posts.  No event: reactions are not
 * among the changes others see live (docs/events.md).  Both count against
 * the caller's reaction budget (fcgi-apps/lib/userlimits), and a post holds at most
 * TH_REACTION_KINDS_MAX (50) distinct kinds: a new kind beyond them is 400
 * validation_failed (field emoji); adding one of its kinds stays allowed. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "jh.h"
#include "userlimits.h"
#include "log.h"
#include "posts.h"
#include "reply.h"

#define EMOJI_MAX_BYTES 32

/* Decodes the code point at s (valid UTF-8, checked before); its length in
 * *n. */
static uint32_t utf8_next(const unsigned char *s, size_t *n)
{
	if (s[0] < 0x80) {
		*n = 1;
		return s[0];
	}
	if (s[0] < 0xe0) {
		*n = 2;
		return ((uint32_t)(s[0] & 0x1f) << 6) | (s[1] & 0x3f);
	}
	if (s[0] < 0xf0) {
		*n = 3;
		return ((uint32_t)(s[0] & 0x0f) << 12) | ((uint32_t)(s[1] & 0x3f) << 6) |
		       (s[2] & 0x3f);
	}
	*n = 4;
	return ((uint32_t)(s[0] & 0x07) << 18) | ((uint32_t)(s[1] & 0x3f) << 12) |
	       ((uint32_t)(s[2] & 0x3f) << 6) | (s[3] & 0x3f);
}

/* Unicode White_Space, and C1 controls (U+0085 is both). */
static int space_or_control(uint32_t cp)
{
	return cp <= 0x20 || (cp >= 0x7f && cp <= 0xa0) || cp == 0x1680 ||
	       (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 || cp == 0x2029 || cp == 0x202f ||
	       cp == 0x205f || cp == 0x3000 || cp == 0xfeff;
}

/* The emoji path parameter, or NULL with 400 (field emoji) replied. */
static const char *emoji_or_400(struct http_req *req)
{
	const char *e = http_param(req, "emoji");
	size_t len = e ? strlen(e) : 0, i, n;

	if (len < 1 || len > EMOJI_MAX_BYTES || jh_utf8_len(e, len) < 0)
		goto bad;
	for (i = 0; i < len; i += n)
		if (space_or_control(utf8_next((const unsigned char *)e + i, &n)))
			goto bad;
	return e;
bad:
	http_reply_error(req, TH_EVALIDATION,
			 "emoji must be 1 to 32 bytes of UTF-8 without spaces or control "
			 "characters",
			 "emoji");
	return NULL;
}

/* PUT: adds the caller's reaction, unless the emoji is a new kind on a post
 * that has limits.reaction_kinds_max kinds already.  The post's row is
 * locked first (FOR NO KEY UPDATE, the lock the counting trigger takes
 * anyway), so concurrent new kinds are counted one after the other and the
 * cap holds exactly; FOR UPDATE reads the newest counts after the wait.
 * One row: (post found, kind allowed, inserted). */
static const char PUT_SQL[] =
	"WITH p AS (SELECT id, reaction_counts ? $3 "
	"  OR (SELECT count(*) FROM jsonb_object_keys(reaction_counts)) < $4 AS ok "
	"  FROM posts WHERE id = $1 FOR NO KEY UPDATE), "
	"ins AS (INSERT INTO reactions (post_id, user_id, emoji) SELECT $1, $2, $3 FROM p "
	"  WHERE p.ok ON CONFLICT DO NOTHING RETURNING 1) "
	"SELECT (SELECT count(*) FROM p), coalesce((SELECT ok FROM p), false), "
	"  (SELECT count(*) FROM ins)";

/* put: 1 to add, 0 to remove. */
static void reaction_set(struct http_req *req, int put)
{
	struct community c;
	struct post_ref p;
	const char *emoji;
	char pid[24], uid[24], kinds[24];
	const char *params[4];
	struct db_res *r;
	long long changed;

	if (post_access_or_reply(req, "id", DB_PRIMARY, ROLE_MEMBER, &c, &p) < 0 ||
	    !(emoji = emoji_or_400(req)) || limits_take_or_reply(req, LIMIT_REACTION) < 0)
		return;
	params[0] = ids_text(pid, p.id);
	params[1] = ids_text(uid, req->user_id);
	params[2] = emoji;
	params[3] = ids_text(kinds, limits.reaction_kinds_max);
	r = db_own(req, put ? db_exec(DB_PRIMARY, PUT_SQL, 4, params)
			    : db_exec(DB_PRIMARY,
				      "DELETE FROM reactions WHERE post_id = $1 AND user_id = $2 "
				      "AND emoji = $3",
				      3, params));
	if (!r) {
		/* 23503: the post was deleted since the access check */
		if (strcmp(db_last_sqlstate(), "23503") == 0)
			http_reply_error(req, TH_ENOTFOUND, "no such post", NULL);
		else {
			log_error("db: %s [%s]", db_last_error(), db_last_sqlstate());
			http_reply_error(req,
					 db_last_err() == TH_EUNAVAILABLE ? TH_EUNAVAILABLE
									  : TH_EINTERNAL,
					 db_last_err() == TH_EUNAVAILABLE ? "database unavailable"
									  : NULL,
					 NULL);
		}
		return;
	}
	if (put) {
		if (strcmp(db_res_get(r, 0, 0), "0") == 0) { /* deleted since the check */
			http_reply_error(req, TH_ENOTFOUND, "no such post", NULL);
			return;
		}
		if (strcmp(db_res_get(r, 0, 1), "t") != 0) {
			char msg[96];

			snprintf(msg, sizeof(msg), "a post has at most %ld kinds of reaction",
				 limits.reaction_kinds_max);
			http_reply_error(req, TH_EVALIDATION, msg, "emoji");
			return;
		}
		changed = strtoll(db_res_get(r, 0, 2), NULL, 10);
	} else {
		changed = db_res_affected(r);
	}
	if (changed) {
		feedcache_bump(c.id);
		ryw_wrote(req->user_id);
	}
	http_reply_empty(req, 204);
}

void reactions_put(struct http_req *req)
{
	reaction_set(req, 1);
}

void reactions_delete(struct http_req *req)
{
	reaction_set(req, 0);
}
