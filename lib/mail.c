/* mail: the outbox row (mail_queue) and one message's bytes (mail_compose). */
#include "mail.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db.h"
#include "err.h"

int mail_queue(const char *kind, const char *to, int64_t user_id, const char *params_json)
{
	char uid[24];
	const char *params[] = {kind, to, user_id > 0 ? uid : NULL,
				params_json ? params_json : "{}"};
	struct db_res *r;

	if (!mail_addr_ok(to) || (params_json && strlen(params_json) > MAIL_PARAMS_MAX))
		return -1;
	snprintf(uid, sizeof(uid), "%lld", (long long)user_id);
	/* the NOTIFY is delivered at commit, and only then: a sender woken
	 * early would find nothing; the payload is empty (the row is the truth) */
	r = db_exec(DB_PRIMARY,
		    "WITH m AS (INSERT INTO mail_outbox (kind, to_addr, user_id, params) "
		    "VALUES ($1, $2, $3, $4::text::jsonb) RETURNING id) "
		    "SELECT pg_notify('" MAIL_CHANNEL "', '') FROM m",
		    4, params);
	if (!r)
		return -1;
	db_res_free(r);
	return 0;
}

int mail_header_safe(const char *s, size_t max)
{
	size_t n = 0;

	for (; *s; s++, n++) {
		unsigned char c = (unsigned char)*s;

		if (n >= max || c < 0x20 || c == 0x7f)
			return 0;
	}
	return 1;
}

int mail_addr_ok(const char *addr)
{
	const char *at, *s;

	if (!addr || strlen(addr) < 3 || strlen(addr) > MAIL_ADDR_MAX)
		return 0;
	at = strchr(addr, '@');
	if (!at || at == addr || !at[1] || strchr(at + 1, '@'))
		return 0;
	for (s = addr; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c <= 0x20 || c >= 0x7f || strchr("<>()[],;:\\\"", c))
			return 0;
	}
	return 1;
}

/* Length of the UTF-8 character at s (1..4), or 0 when it is not valid. */
static size_t utf8_len(const unsigned char *s)
{
	size_t n, i;

	if (s[0] < 0x80)
		return 1;
	if ((s[0] & 0xe0) == 0xc0 && s[0] >= 0xc2)
		n = 2;
	else if ((s[0] & 0xf0) == 0xe0)
		n = 3;
	else if ((s[0] & 0xf8) == 0xf0 && s[0] <= 0xf4)
		n = 4;
	else
		return 0;
	for (i = 1; i < n; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	return n;
}

/* A growing byte buffer: every append checks memory; oom sticks. */
struct buf {
	char *p;
	size_t len, cap;
	int oom;
};

static void buf_add(struct buf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 1024;
		char *p;

		while (cap < b->len + n + 1)
			cap *= 2;
		p = realloc(b->p, cap);
		if (!p) {
			b->oom = 1;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void buf_str(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

/* "=?UTF-8?B?" + base64 + "?=" is at most 75 bytes: 12 of frame, 63 of
 * base64 (a multiple of 4: 60), so at most 45 bytes of text a word */
#define EW_TEXT_MAX 45

char *mail_subject_encode(const char *subject)
{
	const unsigned char *s = (const unsigned char *)subject;
	struct buf b = {0};
	int ascii = 1;
	size_t i;

	if (!mail_header_safe(subject, 998))
		return NULL;
	for (i = 0; s[i]; i++)
		if (s[i] >= 0x80)
			ascii = 0;
	/* an ASCII subject that looks like an encoded word is encoded too, so
	 * that a reader never decodes what was typed */
	if (ascii && !strstr(subject, "=?")) {
		buf_str(&b, subject);
		return b.oom ? NULL : b.p;
	}
	while (*s) {
		size_t take = 0, n;
		char b64[sodium_base64_ENCODED_LEN(EW_TEXT_MAX, sodium_base64_VARIANT_ORIGINAL)];

		while (s[take] && (n = utf8_len(s + take)) > 0 && take + n <= EW_TEXT_MAX)
			take += n;
		if (take == 0) { /* invalid UTF-8 */
			free(b.p);
			return NULL;
		}
		sodium_bin2base64(b64, sizeof(b64), s, take, sodium_base64_VARIANT_ORIGINAL);
		if (b.len)
			buf_str(&b, "\r\n ");
		buf_str(&b, "=?UTF-8?B?");
		buf_str(&b, b64);
		buf_str(&b, "?=");
		s += take;
	}
	if (b.oom) {
		free(b.p);
		return NULL;
	}
	return b.p;
}

char *mail_html_escape(const char *s)
{
	struct buf b = {0};

	buf_add(&b, "", 0);
	for (; *s; s++) {
		switch (*s) {
		case '&':
			buf_str(&b, "&amp;");
			break;
		case '<':
			buf_str(&b, "&lt;");
			break;
		case '>':
			buf_str(&b, "&gt;");
			break;
		case '"':
			buf_str(&b, "&quot;");
			break;
		case '\'':
			buf_str(&b, "&#39;");
			break;
		default:
			buf_add(&b, s, 1);
		}
	}
	if (b.oom) {
		free(b.p);
		return NULL;
	}
	return b.p;
}

/* body in base64, lines of 76 + CRLF */
static void buf_base64(struct buf *b, const char *body)
{
	size_t n = strlen(body), off;

	for (off = 0; off < n; off += 57) {
		size_t take = n - off < 57 ? n - off : 57;
		char line[80];

		sodium_bin2base64(line, sizeof(line), (const unsigned char *)body + off, take,
				  sodium_base64_VARIANT_ORIGINAL);
		buf_str(b, line);
		buf_str(b, "\r\n");
	}
}

static void buf_part(struct buf *b, const char *boundary, const char *type, const char *body)
{
	buf_str(b, "--");
	buf_str(b, boundary);
	buf_str(b, "\r\nContent-Type: ");
	buf_str(b, type);
	buf_str(b, "; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n");
	buf_base64(b, body);
}

char *mail_compose(const struct mail_msg *m, size_t *len, const char **why)
{
	struct buf b = {0};
	char *subject = NULL, *from_name = NULL, date[64], rnd_hex[33], boundary[64];
	unsigned char rnd[16];
	time_t t = (time_t)m->date;
	struct tm tm;

	*why = NULL;
	if (!mail_addr_ok(m->from) || !mail_addr_ok(m->to)) {
		*why = "address";
		return NULL;
	}
	if (!mail_header_safe(m->msgid_domain, 253) || strpbrk(m->msgid_domain, "<>@ ")) {
		*why = "message id domain";
		return NULL;
	}
	subject = mail_subject_encode(m->subject);
	if (!subject) {
		*why = "subject";
		return NULL;
	}
	if (m->from_name && *m->from_name) {
		/* a display name always as an encoded word: no quoting rules */
		from_name = strchr(m->from_name, '"') ? NULL : mail_subject_encode(m->from_name);
		if (!from_name) {
			free(subject);
			*why = "from name";
			return NULL;
		}
	}
	gmtime_r(&t, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	randombytes_buf(rnd, sizeof(rnd));
	sodium_bin2hex(rnd_hex, sizeof(rnd_hex), rnd, sizeof(rnd));
	/* '=' and '_' never occur in base64 lines or in the hex: the boundary
	 * cannot appear inside a part */
	snprintf(boundary, sizeof(boundary), "=_th_%s", rnd_hex);

	buf_str(&b, "From: ");
	if (from_name) {
		buf_str(&b, from_name);
		buf_str(&b, " ");
	}
	buf_str(&b, "<");
	buf_str(&b, m->from);
	buf_str(&b, ">\r\nTo: <");
	buf_str(&b, m->to);
	buf_str(&b, ">\r\nSubject: ");
	buf_str(&b, subject);
	buf_str(&b, "\r\nDate: ");
	buf_str(&b, date);
	buf_str(&b, "\r\nMessage-ID: <");
	buf_str(&b, rnd_hex);
	buf_str(&b, "@");
	buf_str(&b, m->msgid_domain);
	buf_str(&b, ">\r\nMIME-Version: 1.0\r\nAuto-Submitted: auto-generated\r\n"
		    "Content-Type: multipart/alternative; boundary=\"");
	buf_str(&b, boundary);
	buf_str(&b, "\"\r\n\r\n");
	buf_part(&b, boundary, "text/plain", m->text);
	buf_part(&b, boundary, "text/html", m->html);
	buf_str(&b, "--");
	buf_str(&b, boundary);
	buf_str(&b, "--\r\n");
	free(subject);
	free(from_name);
	if (b.oom) {
		free(b.p);
		*why = "memory";
		return NULL;
	}
	*len = b.len;
	return b.p;
}
