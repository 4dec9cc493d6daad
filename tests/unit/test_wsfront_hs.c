/* Unit tests of the WebSocket front's handshake (realtime-bridge/front/hs.c):
 * the request parser, the checks, the accept key of RFC 6455 4.2.2, and the
 * client address taken from a trusted proxy's headers (addr.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "addr.h"
#include "hs.h"

#define KEY "dGhlIHNhbXBsZSBub25jZQ=="

static const char good[] = "GET /mqtt HTTP/1.1\r\n"
			   "Host: example.org\r\n"
			   "Upgrade: websocket\r\n"
			   "Connection: keep-alive, Upgrade\r\n"
			   "Sec-WebSocket-Key: " KEY "\r\n"
			   "Sec-WebSocket-Version: 13\r\n"
			   "Sec-WebSocket-Protocol: mqttv3.1, mqtt\r\n"
			   "Origin: https://example.org\r\n"
			   "X-Real-IP: 203.0.113.7\r\n"
			   "\r\n";

static enum hs_verdict verdict(const char *req, const char *origins)
{
	struct hs_req r;

	if (hs_parse(req, strlen(req), &r) != HS_PARSED)
		return HS_VERDICTS;
	return hs_check(&r, origins);
}

/* good with one line replaced (or dropped when repl is "") */
static const char *variant(const char *line_start, const char *repl)
{
	static char buf[2048];
	const char *p = strstr(good, line_start), *e;

	assert_non_null(p);
	e = strstr(p, "\r\n") + 2;
	snprintf(buf, sizeof(buf), "%.*s%s%s", (int)(p - good), good, repl, e);
	return buf;
}

/* Repeated header lines: a list header's lines continue its list (RFC 9110
 * 5.3), so a token in any of them counts; a single-valued one repeated is
 * malformed (which of two Origins a proxy checked is unknowable). */
static void test_repeated(void **state)
{
	char req[2048];

	(void)state;
	/* mqtt in the first of two protocol lines, upgrade in the first of two
	 * Connection lines, websocket in the second of two Upgrade lines */
	snprintf(req, sizeof(req), "%s",
		 variant("Sec-WebSocket-Protocol:",
			 "Sec-WebSocket-Protocol: mqtt\r\nSec-WebSocket-Protocol: mqttv3.1\r\n"));
	assert_int_equal(verdict(req, NULL), HS_UPGRADE);
	snprintf(req, sizeof(req), "%s",
		 variant("Connection:", "Connection: Upgrade\r\nConnection: keep-alive\r\n"));
	assert_int_equal(verdict(req, NULL), HS_UPGRADE);
	snprintf(req, sizeof(req), "%s",
		 variant("Upgrade:", "Upgrade: h2c\r\nUpgrade: websocket\r\n"));
	assert_int_equal(verdict(req, NULL), HS_UPGRADE);
	/* none of the lines names mqtt */
	snprintf(req, sizeof(req), "%s",
		 variant("Sec-WebSocket-Protocol:",
			 "Sec-WebSocket-Protocol: a\r\nSec-WebSocket-Protocol: b\r\n"));
	assert_int_equal(verdict(req, NULL), HS_NO_SUBPROTOCOL);
	/* two Origins, keys, versions or X-Real-IPs: malformed, whatever their order */
	snprintf(req, sizeof(req), "%s",
		 variant("Origin:",
			 "Origin: https://evil.example\r\nOrigin: https://example.org\r\n"));
	assert_int_equal(verdict(req, "https://example.org"), HS_VERDICTS);
	snprintf(req, sizeof(req), "%s",
		 variant("Origin:",
			 "Origin: https://example.org\r\nOrigin: https://evil.example\r\n"));
	assert_int_equal(verdict(req, "https://example.org"), HS_VERDICTS);
	snprintf(req, sizeof(req), "%s",
		 variant("Sec-WebSocket-Key:",
			 "Sec-WebSocket-Key: " KEY "\r\nSec-WebSocket-Key: " KEY "\r\n"));
	assert_int_equal(verdict(req, NULL), HS_VERDICTS);
	snprintf(req, sizeof(req), "%s",
		 variant("X-Real-IP:", "X-Real-IP: 203.0.113.7\r\nX-Real-IP: 198.51.100.1\r\n"));
	assert_int_equal(verdict(req, NULL), HS_VERDICTS);
}

static void test_accept_key(void **state)
{
	char out[29];

	(void)state;
	/* RFC 6455 section 1.3 */
	assert_int_equal(hs_accept_key((struct hs_str){KEY, strlen(KEY)}, out), 0);
	assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

static void test_parse(void **state)
{
	struct hs_req r;
	char twice[2048];

	(void)state;
	assert_int_equal(hs_parse(good, strlen(good), &r), HS_PARSED);
	assert_int_equal(r.len, strlen(good));
	assert_int_equal(r.path.n, 5);
	assert_memory_equal(r.path.p, "/mqtt", 5);
	assert_int_equal(r.key.n, 24);
	assert_memory_equal(r.real_ip.p, "203.0.113.7", r.real_ip.n);
	/* incomplete at every cut */
	for (size_t i = 0; i < strlen(good); i++)
		assert_int_equal(hs_parse(good, i, &r), HS_INCOMPLETE);
	/* bytes after the request (a first frame) are not part of it */
	snprintf(twice, sizeof(twice), "%s\x82\x80", good);
	assert_int_equal(hs_parse(twice, strlen(twice), &r), HS_PARSED);
	assert_int_equal(r.len, strlen(good));
	assert_int_equal(hs_parse("GET /mqtt\r\n\r\n", 13, &r), HS_MALFORMED);
	assert_int_equal(hs_parse("GET /mqtt HTTP/2.0\r\n\r\n", 22, &r), HS_MALFORMED);
	assert_int_equal(hs_parse("GET / HTTP/1.1\r\nNoColon\r\n\r\n", 27, &r), HS_MALFORMED);
	assert_int_equal(hs_parse("GET / HTTP/1.1\r\nA: b\nc\r\n\r\n", 26, &r), HS_MALFORMED);
}

static void test_too_large(void **state)
{
	static char big[HS_MAX + 100];
	struct hs_req r;
	size_t n;

	(void)state;
	n = (size_t)snprintf(big, sizeof(big), "GET /mqtt HTTP/1.1\r\nX: ");
	memset(big + n, 'a', sizeof(big) - n);
	assert_int_equal(hs_parse(big, HS_MAX - 1, &r), HS_INCOMPLETE);
	assert_int_equal(hs_parse(big, HS_MAX, &r), HS_TOO_LARGE);
	assert_int_equal(hs_parse(big, sizeof(big), &r), HS_TOO_LARGE);
}

static void test_check(void **state)
{
	(void)state;
	assert_int_equal(verdict(good, NULL), HS_UPGRADE);
	assert_int_equal(verdict(good, ""), HS_UPGRADE);
	assert_int_equal(verdict(variant("GET /mqtt", "GET / HTTP/1.1\r\n"), NULL), HS_UPGRADE);
	assert_int_equal(verdict(variant("GET /mqtt", "GET /mqtt?x=1 HTTP/1.1\r\n"), NULL),
			 HS_UPGRADE);
	assert_int_equal(verdict(variant("GET /mqtt", "GET /other HTTP/1.1\r\n"), NULL),
			 HS_NOT_FOUND);
	assert_int_equal(verdict(variant("GET /mqtt", "POST /mqtt HTTP/1.1\r\n"), NULL),
			 HS_BAD_REQUEST);
	assert_int_equal(verdict(variant("GET /mqtt", "GET /mqtt HTTP/1.0\r\n"), NULL),
			 HS_BAD_REQUEST);
	/* the subprotocol */
	assert_int_equal(verdict(variant("Sec-WebSocket-Protocol", ""), NULL), HS_NO_SUBPROTOCOL);
	assert_int_equal(verdict(variant("Sec-WebSocket-Protocol",
					 "Sec-WebSocket-Protocol: mqttv3.1\r\n"),
				 NULL),
			 HS_NO_SUBPROTOCOL);
	assert_int_equal(verdict(variant("Sec-WebSocket-Protocol",
					 "Sec-WebSocket-Protocol: MQTT\r\n"),
				 NULL),
			 HS_UPGRADE);
	/* the upgrade itself */
	assert_int_equal(verdict(variant("Upgrade:", ""), NULL), HS_BAD_REQUEST);
	assert_int_equal(verdict(variant("Connection:", "Connection: keep-alive\r\n"), NULL),
			 HS_BAD_REQUEST);
	assert_int_equal(verdict(variant("Sec-WebSocket-Version", "Sec-WebSocket-Version: 8\r\n"),
				 NULL),
			 HS_BAD_REQUEST);
	assert_int_equal(verdict(variant("Sec-WebSocket-Key", "Sec-WebSocket-Key: abc\r\n"), NULL),
			 HS_BAD_REQUEST);
	assert_int_equal(verdict(variant("Sec-WebSocket-Key",
					 "Sec-WebSocket-Key: !!!!!!!!!!!!!!!!!!!!!!==\r\n"),
				 NULL),
			 HS_BAD_REQUEST);
	/* Origin: whole entries of the list only */
	assert_int_equal(verdict(good, "https://example.org"), HS_UPGRADE);
	assert_int_equal(verdict(good, "https://a.test, https://example.org"), HS_UPGRADE);
	assert_int_equal(verdict(good, "https://example.or"), HS_BAD_ORIGIN);
	assert_int_equal(verdict(good, "https://example.org.evil"), HS_BAD_ORIGIN);
	assert_int_equal(verdict(variant("Origin:", ""), "https://example.org"), HS_BAD_ORIGIN);
	assert_int_equal(verdict(variant("Origin:", ""), NULL), HS_UPGRADE);
	/* metrics */
	assert_int_equal(verdict("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", NULL), HS_METRICS);
}

static void test_tokens(void **state)
{
	(void)state;
	assert_true(hs_has_token((struct hs_str){"a, b ,c", 7}, "b"));
	assert_true(hs_has_token((struct hs_str){"a, b ,c", 7}, "C"));
	assert_false(hs_has_token((struct hs_str){"a, bb ,c", 8}, "b"));
	assert_false(hs_has_token((struct hs_str){NULL, 0}, "b"));
}

/* the address a request from peer (text) is keyed by, as text */
static const char *client(const char *peer, const char *headers)
{
	static char req[1024], out[64];
	static const uint8_t trusted[2][16] = {
		{[10] = 0xff, [11] = 0xff, [12] = 127, [15] = 1}, /* 127.0.0.1 */
		{[15] = 1},                                       /* ::1 */
	};
	struct hs_req r;
	uint8_t key[16];

	snprintf(req, sizeof(req), "GET /mqtt HTTP/1.1\r\nHost: x\r\n%s\r\n", headers);
	assert_int_equal(hs_parse(req, strlen(req), &r), HS_PARSED);
	assert_int_equal(addr_parse((struct hs_str){peer, strlen(peer)}, key), 0);
	addr_client(key, &r, trusted, 2);
	return addr_text(key, out, sizeof(out));
}

static void test_client_addr(void **state)
{
	uint8_t k[16];

	(void)state;
	assert_string_equal(client("127.0.0.1", "X-Real-IP: 203.0.113.7\r\n"), "203.0.113.7");
	assert_string_equal(client("::1", "X-Real-IP: 2001:db8::5\r\n"), "2001:db8::5");
	/* X-Forwarded-For: its last entry, the one the proxy appended */
	assert_string_equal(client("127.0.0.1", "X-Forwarded-For: 10.9.9.9, 198.51.100.4\r\n"),
			    "198.51.100.4");
	assert_string_equal(client("127.0.0.1", "X-Forwarded-For: 198.51.100.4 \r\n"),
			    "198.51.100.4");
	/* X-Real-IP wins over X-Forwarded-For */
	assert_string_equal(client("127.0.0.1",
				   "X-Forwarded-For: 10.1.1.1\r\nX-Real-IP: 10.2.2.2\r\n"),
			    "10.2.2.2");
	/* an untrusted peer's headers are ignored; so is a value that is no address */
	assert_string_equal(client("127.0.0.2", "X-Real-IP: 203.0.113.7\r\n"), "127.0.0.2");
	assert_string_equal(client("10.0.0.1", "X-Forwarded-For: 203.0.113.7\r\n"), "10.0.0.1");
	assert_string_equal(client("127.0.0.1", "X-Real-IP: evil\r\n"), "127.0.0.1");
	assert_string_equal(client("127.0.0.1", "X-Forwarded-For: 1.2.3.4, nonsense\r\n"),
			    "127.0.0.1");
	assert_string_equal(client("127.0.0.1", ""), "127.0.0.1");
	/* loopback */
	assert_int_equal(addr_parse((struct hs_str){"127.9.8.7", 9}, k), 0);
	assert_true(addr_is_loopback(k));
	assert_int_equal(addr_parse((struct hs_str){"::1", 3}, k), 0);
	assert_true(addr_is_loopback(k));
	assert_int_equal(addr_parse((struct hs_str){"128.0.0.1", 9}, k), 0);
	assert_false(addr_is_loopback(k));
	assert_int_equal(addr_parse((struct hs_str){"1.2.3", 5}, k), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_accept_key), cmocka_unit_test(test_parse),
		cmocka_unit_test(test_too_large),  cmocka_unit_test(test_check),
		cmocka_unit_test(test_tokens),     cmocka_unit_test(test_client_addr),
		cmocka_unit_test(test_repeated),
	};

	return cmocka_run_group_tests_name("wsfront handshake", tests, NULL, NULL);
}
