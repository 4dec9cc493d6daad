/* hs: see hs.h. */
#include "hs.h"

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <string.h>
#include <strings.h>

static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/* the end of the headers: "\r\n\r\n" (bare "\n\n" is not accepted) */
static const char *headers_end(const char *buf, size_t n)
{
	size_t i;

	for (i = 3; i < n; i++)
		if (buf[i] == '\n' && buf[i - 1] == '\r' && buf[i - 2] == '\n' &&
		    buf[i - 3] == '\r')
			return buf + i + 1;
	return NULL;
}

static struct hs_str trim(const char *p, size_t n)
{
	while (n && (*p == ' ' || *p == '\t')) {
		p++;
		n--;
	}
	while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
		n--;
	return (struct hs_str){p, n};
}

static int name_is(const char *p, size_t n, const char *name)
{
	return strlen(name) == n && strncasecmp(p, name, n) == 0;
}

/* a single-valued header's line: -1 when one came before (two Origins or
 * keys: which one a proxy or the broker's log saw is anybody's guess) */
static int once(struct hs_str *field, struct hs_str v)
{
	if (field->p)
		return -1;
	*field = v;
	return 0;
}

/* a list header's line: the last one kept, its token noted */
static int list(struct hs_str *field, struct hs_str v, unsigned *tokens, const char *tok,
		unsigned bit)
{
	*field = v;
	if (hs_has_token(v, tok))
		*tokens |= bit;
	return 0;
}

/* one header line "Name: value" (without its CRLF) */
static int header(const char *p, size_t n, struct hs_req *req)
{
	const char *colon = memchr(p, ':', n);
	size_t nl;
	struct hs_str v;

	if (!colon || colon == p)
		return -1;
	nl = (size_t)(colon - p);
	for (size_t i = 0; i < nl; i++)
		if (p[i] <= 0x20 || p[i] >= 0x7f)
			return -1;
	v = trim(colon + 1, n - nl - 1);
	for (size_t i = 0; i < v.n; i++)
		if ((unsigned char)v.p[i] < 0x20 && v.p[i] != '\t')
			return -1;
	if (name_is(p, nl, "Upgrade"))
		return list(&req->upgrade, v, &req->tokens, "websocket", HS_TOK_WEBSOCKET);
	if (name_is(p, nl, "Connection"))
		return list(&req->connection, v, &req->tokens, "upgrade", HS_TOK_UPGRADE);
	if (name_is(p, nl, "Sec-WebSocket-Protocol"))
		return list(&req->protocol, v, &req->tokens, "mqtt", HS_TOK_MQTT);
	if (name_is(p, nl, "Sec-WebSocket-Key"))
		return once(&req->key, v);
	if (name_is(p, nl, "Sec-WebSocket-Version"))
		return once(&req->ws_version, v);
	if (name_is(p, nl, "Origin"))
		return once(&req->origin, v);
	if (name_is(p, nl, "X-Real-IP"))
		return once(&req->real_ip, v);
	if (name_is(p, nl, "X-Forwarded-For"))
		req->forwarded_for = v;
	return 0;
}

enum hs_parse_result hs_parse(const char *buf, size_t n, struct hs_req *req)
{
	const char *end, *p, *eol, *sp1, *sp2;

	memset(req, 0, sizeof(*req));
	end = headers_end(buf, n < HS_MAX ? n : HS_MAX);
	if (!end)
		return n >= HS_MAX ? HS_TOO_LARGE : HS_INCOMPLETE;
	req->len = (size_t)(end - buf);
	/* request line: METHOD SP PATH SP HTTP/1.x CRLF */
	eol = memchr(buf, '\r', req->len);
	if (!eol || eol[1] != '\n')
		return HS_MALFORMED;
	sp1 = memchr(buf, ' ', (size_t)(eol - buf));
	if (!sp1 || sp1 == buf)
		return HS_MALFORMED;
	sp2 = memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1));
	if (!sp2 || sp2 == sp1 + 1)
		return HS_MALFORMED;
	req->method = (struct hs_str){buf, (size_t)(sp1 - buf)};
	req->path = (struct hs_str){sp1 + 1, (size_t)(sp2 - sp1 - 1)};
	req->version = (struct hs_str){sp2 + 1, (size_t)(eol - sp2 - 1)};
	if (req->version.n != 8 || strncmp(req->version.p, "HTTP/1.", 7) != 0)
		return HS_MALFORMED;
	for (size_t i = 0; i < req->path.n; i++)
		if (req->path.p[i] <= 0x20 || req->path.p[i] >= 0x7f)
			return HS_MALFORMED;
	/* header lines up to the empty one */
	for (p = eol + 2; p < end - 2; p = eol + 2) {
		eol = memchr(p, '\r', (size_t)(end - p));
		if (!eol || eol[1] != '\n')
			return HS_MALFORMED;
		if (memchr(p, '\n', (size_t)(eol - p)))
			return HS_MALFORMED; /* a bare LF inside a line */
		if (header(p, (size_t)(eol - p), req) < 0)
			return HS_MALFORMED;
	}
	return HS_PARSED;
}

int hs_has_token(struct hs_str s, const char *tok)
{
	size_t tl = strlen(tok), i = 0;

	while (i < s.n) {
		size_t j;
		struct hs_str t;

		for (j = i; j < s.n && s.p[j] != ','; j++)
			;
		t = trim(s.p + i, j - i);
		if (t.n == tl && strncasecmp(t.p, tok, tl) == 0)
			return 1;
		i = j + 1;
	}
	return 0;
}

static int str_is(struct hs_str s, const char *lit)
{
	return s.n == strlen(lit) && memcmp(s.p, lit, s.n) == 0;
}

/* the path without its query string */
static struct hs_str path_only(struct hs_str path)
{
	const char *q = memchr(path.p, '?', path.n);

	return q ? (struct hs_str){path.p, (size_t)(q - path.p)} : path;
}

/* base64 of 16 bytes: 22 significant characters and "==" */
static int key_ok(struct hs_str key)
{
	unsigned char out[24];

	if (key.n != 24 || key.p[22] != '=' || key.p[23] != '=')
		return 0;
	return EVP_DecodeBlock(out, (const unsigned char *)key.p, 24) == 18;
}

/* Origin is compared whole, ASCII case-insensitively, with each entry */
static int origin_ok(struct hs_str origin, const char *origins)
{
	const char *s = origins;

	if (!origins || !*origins)
		return 1;
	if (!origin.p)
		return 0;
	while (*s) {
		const char *c = strchr(s, ',');
		size_t l = c ? (size_t)(c - s) : strlen(s);
		struct hs_str t = trim(s, l);

		if (t.n && t.n == origin.n && strncasecmp(t.p, origin.p, t.n) == 0)
			return 1;
		s += l + (c ? 1 : 0);
	}
	return 0;
}

enum hs_verdict hs_check(const struct hs_req *req, const char *origins)
{
	struct hs_str path = path_only(req->path);

	if (!str_is(req->method, "GET"))
		return HS_BAD_REQUEST;
	if (str_is(path, "/metrics") && !req->upgrade.p)
		return HS_METRICS;
	if (!str_is(path, "/mqtt") && !str_is(path, "/"))
		return HS_NOT_FOUND;
	if (!str_is(req->version, "HTTP/1.1") || !(req->tokens & HS_TOK_WEBSOCKET) ||
	    !(req->tokens & HS_TOK_UPGRADE) || !str_is(req->ws_version, "13") || !key_ok(req->key))
		return HS_BAD_REQUEST;
	if (!(req->tokens & HS_TOK_MQTT))
		return HS_NO_SUBPROTOCOL;
	if (!origin_ok(req->origin, origins))
		return HS_BAD_ORIGIN;
	return HS_UPGRADE;
}

int hs_accept_key(struct hs_str key, char out[29])
{
	unsigned char md[SHA_DIGEST_LENGTH];
	char in[64 + sizeof(ws_guid)];

	if (key.n > 64)
		return -1;
	memcpy(in, key.p, key.n);
	memcpy(in + key.n, ws_guid, sizeof(ws_guid) - 1);
	if (!SHA1((const unsigned char *)in, key.n + sizeof(ws_guid) - 1, md))
		return -1;
	if (EVP_EncodeBlock((unsigned char *)out, md, SHA_DIGEST_LENGTH) != 28)
		return -1;
	out[28] = '\0';
	return 0;
}
