/* hs: the HTTP/1.1 request that opens a WebSocket (RFC 6455 section 4.2) —
 * a pure parser over the bytes received so far, the check of what the front
 * requires, and the Sec-WebSocket-Accept key.  No I/O.
 *
 * The request is bounded by HS_MAX bytes; every field points into the
 * caller's buffer (not NUL-terminated: pointer and length). */
#ifndef TH_HS_H
#define TH_HS_H

#include <stddef.h>

#define HS_MAX 8192 /* request line and headers, CRLFCRLF included */

struct hs_str {
	const char *p;
	size_t n;
};

/* tokens seen in any line of a list header (a repeated Upgrade, Connection
 * or Sec-WebSocket-Protocol line continues the list: RFC 9110 5.3) */
#define HS_TOK_WEBSOCKET 0x1 /* Upgrade: websocket */
#define HS_TOK_UPGRADE 0x2   /* Connection: upgrade */
#define HS_TOK_MQTT 0x4      /* Sec-WebSocket-Protocol: mqtt */

struct hs_req {
	size_t len; /* bytes of the request, CRLFCRLF included */
	struct hs_str method, path, version;
	/* list headers: their last line; tokens holds what any line named */
	struct hs_str upgrade, connection, protocol;
	unsigned tokens;
	/* single-valued: a second line makes the request malformed */
	struct hs_str key, ws_version, origin, real_ip;
	struct hs_str forwarded_for; /* the last line: a proxy appends its own */
};

enum hs_parse_result {
	HS_INCOMPLETE = 0, /* no CRLFCRLF yet and fewer than HS_MAX bytes */
	HS_PARSED,         /* *req is filled */
	HS_MALFORMED,      /* not an HTTP/1.x request, or a single-valued header repeated */
	HS_TOO_LARGE,      /* HS_MAX bytes without the end of the headers */
};

/* Parses buf[0..n).  HS_PARSED also when bytes follow the request (a
 * client may send its first frame at once): req->len says where they start. */
enum hs_parse_result hs_parse(const char *buf, size_t n, struct hs_req *req);

/* What the front answers to a parsed request. */
enum hs_verdict {
	HS_UPGRADE = 0,    /* 101 */
	HS_METRICS,        /* GET /metrics without Upgrade */
	HS_BAD_REQUEST,    /* 400: not a WebSocket upgrade, bad key or version */
	HS_NO_SUBPROTOCOL, /* 400: "mqtt" is not among Sec-WebSocket-Protocol */
	HS_BAD_ORIGIN,     /* 403 */
	HS_NOT_FOUND,      /* 404: another path */
	HS_VERDICTS
};

/* origins: a comma list of allowed Origin values, NULL or "" for any. */
enum hs_verdict hs_check(const struct hs_req *req, const char *origins);

/* 1 when the comma/space separated token list s holds tok (ASCII case-insensitive). */
int hs_has_token(struct hs_str s, const char *tok);

/* Sec-WebSocket-Accept for a key: base64(SHA-1(key + GUID)), 28 characters
 * and a NUL into out.  Returns 0, or -1 when OpenSSL fails. */
int hs_accept_key(struct hs_str key, char out[29]);

#endif
