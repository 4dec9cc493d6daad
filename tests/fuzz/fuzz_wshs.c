/* fuzz_wshs: the WebSocket front's handshake parser and checks
 * (realtime-bridge/front/hs.c) on raw request bytes.
 *
 * Input: a byte (bit 0: an Origin allow-list is set), then the request.
 * Checks: a parsed request lies within the input and HS_MAX; every field
 * points inside it; the request parses the same when cut right after its
 * end; an accepted upgrade has the mqtt subprotocol, a 24-character key and
 * an accept key of 28 base64 characters; any prefix shorter than the end
 * of the headers is incomplete. */
#include "fuzz.h"
#include "hs.h"

static void inside(struct hs_str s, const char *buf, size_t len)
{
	if (!s.p)
		return;
	FZ_CHECK(s.p >= buf && s.p + s.n <= buf + len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz f = {data, size};
	const char *origins = (fz_byte(&f) & 1) ? "https://a.test, https://b.test" : NULL;
	size_t n;
	char *buf = fz_rest(&f, &n);
	struct hs_req r, r2;
	enum hs_parse_result pr = hs_parse(buf, n, &r);

	if (pr == HS_PARSED) {
		enum hs_verdict v = hs_check(&r, origins);

		FZ_CHECK(r.len <= n && r.len <= HS_MAX && r.len >= 4);
		FZ_CHECK(memcmp(buf + r.len - 4, "\r\n\r\n", 4) == 0);
		inside(r.method, buf, r.len);
		inside(r.path, buf, r.len);
		inside(r.key, buf, r.len);
		inside(r.protocol, buf, r.len);
		inside(r.origin, buf, r.len);
		inside(r.real_ip, buf, r.len);
		inside(r.forwarded_for, buf, r.len);
		FZ_CHECK(hs_parse(buf, r.len, &r2) == HS_PARSED && r2.len == r.len);
		FZ_CHECK(hs_parse(buf, r.len - 1, &r2) == HS_INCOMPLETE);
		if (v == HS_UPGRADE) {
			char key[29];

			FZ_CHECK(hs_has_token(r.protocol, "mqtt"));
			FZ_CHECK(r.key.n == 24);
			FZ_CHECK(hs_accept_key(r.key, key) == 0 && strlen(key) == 28);
			if (origins)
				FZ_CHECK(r.origin.p != NULL);
		}
	} else if (pr == HS_INCOMPLETE) {
		FZ_CHECK(n < HS_MAX);
	} else if (pr == HS_TOO_LARGE) {
		FZ_CHECK(n >= HS_MAX);
	}
	free(buf);
	return 0;
}
