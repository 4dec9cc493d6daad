/* Unit tests of the WebSocket front's MQTT side (realtime-bridge/front):
 * the stream framer (peek.c) with its remaining-length edge cases, and the
 * CONNECT parser and will rules (mconn.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "mconn.h"
#include "peek.h"

static void test_varint(void **state)
{
	uint32_t v = 0;

	(void)state;
	assert_int_equal(peek_varint((const uint8_t *)"\x00", 1, &v), 1);
	assert_int_equal(v, 0);
	assert_int_equal(peek_varint((const uint8_t *)"\x7f", 1, &v), 1);
	assert_int_equal(v, 127);
	assert_int_equal(peek_varint((const uint8_t *)"\x80\x01", 2, &v), 2);
	assert_int_equal(v, 128);
	assert_int_equal(peek_varint((const uint8_t *)"\xff\x7f", 2, &v), 2);
	assert_int_equal(v, 16383);
	assert_int_equal(peek_varint((const uint8_t *)"\x80\x80\x01", 3, &v), 3);
	assert_int_equal(v, 16384);
	assert_int_equal(peek_varint((const uint8_t *)"\xff\xff\xff\x7f", 4, &v), 4);
	assert_int_equal(v, 268435455);
	assert_int_equal(peek_varint((const uint8_t *)"\x80\x80", 2, &v), 0); /* more needed */
	assert_int_equal(peek_varint((const uint8_t *)"\x80\x80\x80\x80\x01", 5, &v), -1);
	assert_int_equal(peek_varint((const uint8_t *)"", 0, &v), 0);
}

/* feeds s in pieces of chunk bytes; returns the first error, the output in out */
static enum peek_err feed(struct peek *p, const uint8_t *s, size_t n, size_t chunk, uint32_t max,
			  uint8_t *out, size_t *outn)
{
	uint8_t tmp[256];
	size_t i, o = 0;

	for (i = 0; i < n; i += chunk) {
		size_t k = n - i < chunk ? n - i : chunk, got;
		enum peek_err e = peek_feed(p, s + i, k, max, tmp, &got);

		memcpy(out + o, tmp, got);
		o += got;
		if (e != PEEK_OK) {
			*outn = o;
			return e;
		}
	}
	*outn = o;
	return PEEK_OK;
}

static void test_framer(void **state)
{
	/* CONNECT (12 bytes), PINGREQ, PUBLISH with 3 bytes */
	static const uint8_t stream[] = {0x10, 0x0a, 0,    4,    'M',  'Q',  'T', 'T', 4,  2,
					 0,    60,   0xc0, 0x00, 0x30, 0x03, 'a', 'b', 'c'};
	uint8_t out[64];
	size_t chunk, outn;

	(void)state;
	for (chunk = 1; chunk <= sizeof(stream); chunk++) {
		struct peek p = {0};

		assert_int_equal(feed(&p, stream, sizeof(stream), chunk, 65536, out, &outn),
				 PEEK_OK);
		assert_int_equal(outn, sizeof(stream));
		assert_memory_equal(out, stream, sizeof(stream));
		assert_true(p.first_done);
		assert_int_equal(p.connect_len, 12);
	}
}

static void test_framer_limits(void **state)
{
	/* a CONNECT, then a PUBLISH announcing 65536 bytes: 1 + 3 + 65536 > 65536 */
	static const uint8_t big[] = {0x10, 0x00, 0x30, 0x80, 0x80, 0x04, 'x'};
	static const uint8_t exact[] = {0x10, 0x00, 0x30, 0xfc, 0xff, 0x03}; /* 65532 + 4 */
	static const uint8_t first_publish[] = {0x30, 0x00};
	static const uint8_t five[] = {0x10, 0x00, 0x30, 0x80, 0x80, 0x80, 0x80, 0x01};
	uint8_t out[64];
	size_t chunk, outn;

	(void)state;
	for (chunk = 1; chunk <= sizeof(big); chunk++) {
		struct peek p = {0};

		assert_int_equal(feed(&p, big, sizeof(big), chunk, 65536, out, &outn),
				 PEEK_TOO_BIG);
		/* the CONNECT passed, nothing of the big packet */
		assert_int_equal(outn, 2);
	}
	{
		struct peek p = {0};

		assert_int_equal(feed(&p, exact, sizeof(exact), 1, 65536, out, &outn), PEEK_OK);
		assert_int_equal(outn, sizeof(exact));
		assert_int_equal(p.left, 65532);
	}
	{
		struct peek p = {0};

		assert_int_equal(feed(&p, first_publish, 2, 1, 65536, out, &outn),
				 PEEK_NOT_CONNECT);
		assert_int_equal(outn, 0);
	}
	{
		struct peek p = {0};

		assert_int_equal(feed(&p, five, sizeof(five), 1, 1u << 30, out, &outn),
				 PEEK_MALFORMED);
	}
	{
		/* the CONNECT itself over the limit */
		static const uint8_t c[] = {0x10, 0xff, 0x7f};
		struct peek p = {0};

		assert_int_equal(feed(&p, c, sizeof(c), 1, 1024, out, &outn), PEEK_TOO_BIG);
		assert_int_equal(outn, 0);
	}
}

struct will {
	const char *topic, *payload;
	int retain;
	size_t props; /* MQTT 5 will properties: that many bytes of user property padding */
	const char *prop_name; /* of that user property: NULL for "k" */
};

/* builds a CONNECT */
static size_t connect_pkt(uint8_t *out, int version, const char *cid, const struct will *w)
{
	uint8_t body[40000];
	size_t n = 0, i, l;
	uint8_t flags = 0x02 | 0x40; /* clean, password */

	if (w)
		flags |= 0x04 | 0x08 | (w->retain ? 0x20 : 0); /* will, QoS 1 */
	body[n++] = 0;
	body[n++] = 4;
	memcpy(body + n, "MQTT", 4);
	n += 4;
	body[n++] = (uint8_t)version;
	body[n++] = flags;
	body[n++] = 0;
	body[n++] = 30;
	if (version == 5)
		body[n++] = 0; /* no properties */
	l = strlen(cid);
	body[n++] = (uint8_t)(l >> 8);
	body[n++] = (uint8_t)l;
	memcpy(body + n, cid, l);
	n += l;
	if (w) {
		if (version == 5) {
			/* user property 0x26: name "k", value of w->props - 6 bytes */
			const char *pn = w->prop_name ? w->prop_name : "k";
			size_t pnl = strlen(pn);
			size_t vl = w->props ? w->props - 5 - pnl : 0;
			uint32_t pl = w->props ? (uint32_t)(w->props) : 0;

			do {
				body[n++] = (uint8_t)((pl & 0x7f) | (pl > 0x7f ? 0x80 : 0));
				pl >>= 7;
			} while (pl);
			if (w->props) {
				body[n++] = 0x26;
				body[n++] = 0;
				body[n++] = (uint8_t)pnl;
				memcpy(body + n, pn, pnl);
				n += pnl;
				body[n++] = (uint8_t)(vl >> 8);
				body[n++] = (uint8_t)vl;
				memset(body + n, 'v', vl);
				n += vl;
			}
		}
		l = strlen(w->topic);
		body[n++] = (uint8_t)(l >> 8);
		body[n++] = (uint8_t)l;
		memcpy(body + n, w->topic, l);
		n += l;
		l = strlen(w->payload);
		body[n++] = (uint8_t)(l >> 8);
		body[n++] = (uint8_t)l;
		memcpy(body + n, w->payload, l);
		n += l;
	}
	body[n++] = 0; /* password "tk" */
	body[n++] = 2;
	body[n++] = 't';
	body[n++] = 'k';
	out[0] = 0x10;
	i = 1;
	l = n;
	do {
		out[i++] = (uint8_t)((l & 0x7f) | (l > 0x7f ? 0x80 : 0));
		l >>= 7;
	} while (l);
	memcpy(out + i, body, n);
	return i + n;
}

static enum mconn_result check(int version, const char *cid, const struct will *w, struct mconn *m)
{
	static uint8_t pkt[40100];
	size_t n = connect_pkt(pkt, version, cid, w);
	enum mconn_result r = mconn_parse(pkt, n, m);

	return r == MCONN_OK ? mconn_will_check(m) : r;
}

#define CHAT_OK "{\"id\":\"0b7e2f2c-1f0e-4a53-9a7c-3f1d2e4b5a6c\",\"body\":\"bye\"}"

static void test_connect(void **state)
{
	struct mconn m;
	static const uint8_t v31[] = {0x10, 0x0c, 0, 6, 'M', 'Q', 'I', 's', 'd', 'p', 3, 2, 0, 30};

	(void)state;
	assert_int_equal(check(4, "u42-abc", NULL, &m), MCONN_OK);
	assert_int_equal(m.uid, 42);
	assert_int_equal(m.version, 4);
	assert_int_equal(m.keepalive, 30);
	assert_int_equal(check(5, "u42-abc", NULL, &m), MCONN_OK);
	assert_int_equal(m.version, 5);
	assert_int_equal(check(5, "u9223372036854775-", NULL, &m), MCONN_OK);
	/* client ids */
	assert_int_equal(check(4, "u42", NULL, &m), MCONN_BAD_ID);
	assert_int_equal(check(4, "u-1", NULL, &m), MCONN_BAD_ID);
	assert_int_equal(check(4, "u042-a", NULL, &m), MCONN_BAD_ID);
	assert_int_equal(check(4, "x42-a", NULL, &m), MCONN_BAD_ID);
	assert_int_equal(check(4, "", NULL, &m), MCONN_BAD_ID);
	assert_int_equal(check(4, "u1234567890123456789-a", NULL, &m),
			 MCONN_BAD_ID); /* 19 digits */
	assert_int_equal(check(5, "u4x-", NULL, &m), MCONN_BAD_ID);
	/* MQTT 3.1 */
	assert_int_equal(mconn_parse(v31, sizeof(v31), &m), MCONN_BAD_PROTOCOL);
	/* truncated or trailing bytes */
	{
		uint8_t pkt[256];
		size_t n = connect_pkt(pkt, 4, "u1-a", NULL);

		for (size_t k = 0; k < n; k++)
			assert_int_not_equal(mconn_parse(pkt, k, &m), MCONN_OK);
		pkt[1]--; /* the length says one byte less than there is */
		assert_int_equal(mconn_parse(pkt, n, &m), MCONN_MALFORMED);
	}
}

static void test_will(void **state)
{
	struct mconn m;
	struct will w;
	static char big[17000];

	(void)state;
	w = (struct will){"chat/5/42", CHAT_OK, 0, 0, NULL};
	assert_int_equal(check(4, "u42-a", &w, &m), MCONN_OK);
	assert_int_equal(check(5, "u42-a", &w, &m), MCONN_OK);
	w = (struct will){"typing/5/42", "{}", 0, 0, NULL};
	assert_int_equal(check(5, "u42-a", &w, &m), MCONN_OK);
	w = (struct will){"signal/9/7/42", "{\"type\":\"bye\"}", 0, 0, NULL};
	assert_int_equal(check(5, "u42-a", &w, &m), MCONN_OK);
	/* topics: someone else's, a server topic, no topic of the table */
	w = (struct will){"chat/5/43", CHAT_OK, 0, 0, NULL};
	assert_int_equal(check(5, "u42-a", &w, &m), MCONN_WILL_TOPIC);
	assert_int_equal(check(4, "u42-a", &w, &m), MCONN_WILL_TOPIC);
	w = (struct will){"presence/5/42", "{}", 0, 0, NULL};
	assert_int_equal(check(5, "u42-a", &w, &m), MCONN_WILL_TOPIC);
	w = (struct will){"user/42/inbox", "{}", 0, 0, NULL};
	assert_int_equal(check(5, "u42-a", &w, &m), MCONN_WILL_TOPIC);
	w = (struct will){"signal/9/42/42", "{}", 0, 0, NULL};
	assert_int_equal(check(5, "u42-a", &w, &m), MCONN_WILL_TOPIC);
	w = (struct will){"anything", "x", 0, 0, NULL};
	assert_int_equal(check(5, "u42-a", &w, &m), MCONN_WILL_TOPIC);
	/* retained */
	w = (struct will){"chat/5/42", CHAT_OK, 1, 0, NULL};
	assert_int_equal(check(5, "u42-a", &w, &m), MCONN_WILL_RETAIN);
	assert_int_equal(check(4, "u42-a", &w, &m), MCONN_WILL_RETAIN);
	/* payloads */
	w = (struct will){"chat/5/42", "{\"body\":\"no id\"}", 0, 0, NULL};
	assert_int_equal(check(5, "u42-a", &w, &m), MCONN_WILL_PAYLOAD);
	memset(big, ' ', sizeof(big) - 1);
	big[0] = '{';
	big[sizeof(big) - 2] = '}';
	w = (struct will){"typing/5/42", big, 0, 0, NULL};
	assert_int_equal(check(5, "u42-a", &w, &m), MCONN_WILL_PAYLOAD);
	w = (struct will){"signal/9/7/42", big, 0, 0, NULL};
	assert_int_equal(check(5, "u42-a", &w, &m), MCONN_WILL_PAYLOAD);
	/* MQTT 5 will properties count towards the 16 KiB */
	w = (struct will){"chat/5/42", CHAT_OK, 0, 16384, NULL};
	assert_int_equal(check(5, "u42-a", &w, &m), MCONN_WILL_PAYLOAD);
	w = (struct will){"chat/5/42", CHAT_OK, 0, 1000, NULL};
	assert_int_equal(check(5, "u42-a", &w, &m), MCONN_OK);
	assert_true(m.will_props_len > 1000);
	/* the servers' own property (which edge a message came in through) */
	w = (struct will){"chat/5/42", CHAT_OK, 0, 20, "th-edge"};
	assert_int_equal(check(5, "u42-a", &w, &m), MCONN_WILL_PROPS);
	w = (struct will){"chat/5/42", CHAT_OK, 0, 20, "th-edgy"};
	assert_int_equal(check(5, "u42-a", &w, &m), MCONN_OK);
}

static void test_connack(void **state)
{
	uint8_t b[5];

	(void)state;
	assert_int_equal(mconn_connack(4, MCONN_BAD_ID, b), 4);
	assert_memory_equal(b, "\x20\x02\x00\x02", 4);
	assert_int_equal(mconn_connack(5, MCONN_BAD_ID, b), 5);
	assert_memory_equal(b, "\x20\x03\x00\x85\x00", 5);
	mconn_connack(4, MCONN_WILL_RETAIN, b);
	assert_int_equal(b[3], 0x05);
	mconn_connack(5, MCONN_WILL_TOPIC, b);
	assert_int_equal(b[3], 0x90);
	mconn_connack(5, MCONN_WILL_RETAIN, b);
	assert_int_equal(b[3], 0x9a);
	mconn_connack(5, MCONN_WILL_PAYLOAD, b);
	assert_int_equal(b[3], 0x99);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_varint),        cmocka_unit_test(test_framer),
		cmocka_unit_test(test_framer_limits), cmocka_unit_test(test_connect),
		cmocka_unit_test(test_will),          cmocka_unit_test(test_connack),
	};

	return cmocka_run_group_tests_name("wsfront mqtt", tests, NULL, NULL);
}
