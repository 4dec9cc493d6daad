/* modrule: slow mode and content limits, one rule for REST and MQTT. */
#include "modrule.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "cache.h"
#include "jhcore.h"

/* packed: slow_s in bits 0..16 (86400 < 2^17), max_len in 17..29 (4000 <
 * 2^13), links in 30, bit 31 marks a packed value (0 is "unknown") */
#define PACK_LEN_SHIFT 17
#define PACK_LINKS_BIT (1LL << 30)
#define PACK_MARK (1LL << 31)

void modrule_default(struct modrule *m)
{
	m->slow_s = 0;
	m->max_len = MODRULE_LEN_MAX;
	m->links = 1;
}

int modrule_is_default(const struct modrule *m)
{
	return m->slow_s == 0 && m->max_len >= MODRULE_LEN_MAX && m->links;
}

int64_t modrule_pack(const struct modrule *m)
{
	return PACK_MARK | (int64_t)(m->slow_s & 0x1ffff) |
	       ((int64_t)(m->max_len & 0x1fff) << PACK_LEN_SHIFT) | (m->links ? PACK_LINKS_BIT : 0);
}

void modrule_unpack(int64_t v, struct modrule *m)
{
	modrule_default(m);
	if (!(v & PACK_MARK))
		return;
	m->slow_s = (long)(v & 0x1ffff);
	m->max_len = (long)((v >> PACK_LEN_SHIFT) & 0x1fff);
	m->links = (v & PACK_LINKS_BIT) != 0;
	if (m->slow_s > MODRULE_SLOW_MAX)
		m->slow_s = MODRULE_SLOW_MAX;
	if (m->max_len < 1 || m->max_len > MODRULE_LEN_MAX)
		m->max_len = MODRULE_LEN_MAX;
}

/* A link as a reader would click it: a scheme a browser follows, or a bare
 * www. host.  Deliberately simple and documented (docs/openapi.yaml): the
 * point is to stop spam links, not to parse URLs. */
static int has_link(const char *s, size_t n)
{
	static const char *const marks[] = {"http://", "https://", "www."};

	for (size_t i = 0; i < n; i++)
		for (size_t k = 0; k < sizeof(marks) / sizeof(marks[0]); k++) {
			size_t m = strlen(marks[k]);

			if (n - i >= m && strncasecmp(s + i, marks[k], m) == 0)
				return 1;
		}
	return 0;
}

enum modrule_why modrule_body(const struct modrule *m, const char *body, size_t n)
{
	if (jh_utf8_len(body, n) > m->max_len)
		return MODRULE_TOO_LONG;
	if (!m->links && has_link(body, n))
		return MODRULE_LINK;
	return MODRULE_OK;
}

const char *modrule_why_text(enum modrule_why w)
{
	switch (w) {
	case MODRULE_TOO_LONG:
		return "body is over this community's max_message_length";
	case MODRULE_LINK:
		return "links are not allowed in this community (links_allowed is false)";
	default:
		return NULL;
	}
}

int modrule_slow_take(int64_t ch, int64_t uid, long slow_s, const char *msg_id, long long *left_ms)
{
	char key[64], px[24];
	const char *set[] = {"SET", key, msg_id, "NX", "PX", px, "GET"};
	const char *pttl[] = {"PTTL", key};
	struct cache_reply *r;
	int rc = -1;

	*left_ms = 0;
	snprintf(key, sizeof(key), "th:slow:%lld:%lld", (long long)ch, (long long)uid);
	snprintf(px, sizeof(px), "%lld", (long long)slow_s * 1000);
	r = cache_cmd(7, set, NULL);
	if (!r || cache_reply_type(r) == CACHE_ERROR)
		goto out;
	/* nil: no send in the window, ours is set; the same id: a resend */
	if (cache_reply_type(r) == CACHE_NIL ||
	    (cache_reply_type(r) == CACHE_STR && strcmp(cache_reply_str(r, NULL), msg_id) == 0)) {
		rc = 1;
		goto out;
	}
	cache_reply_free(r);
	/* refused: how long until the window ends (a second round trip, on
	 * refusals only; when it fails, a second is a fair guess) */
	rc = 0;
	*left_ms = 1000;
	r = cache_cmd(2, pttl, NULL);
	if (r && cache_reply_type(r) == CACHE_INT && cache_reply_int(r) > 0)
		*left_ms = cache_reply_int(r);
out:
	cache_reply_free(r);
	return rc;
}
