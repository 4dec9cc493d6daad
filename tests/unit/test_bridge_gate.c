/* Unit tests of th-bridge's PUBACK gate (realtime-bridge/bridge/gate.c): the
 * test plays the broker on one socketpair and libmosquitto on another. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bridge.h"

struct side {
	int broker; /* the test's end: what the broker writes and reads */
	int lib;    /* the test's end: what libmosquitto reads and writes */
	unsigned char in[1 << 20];
	size_t in_len;
	size_t publishes, pingresps; /* packets that reached "libmosquitto" */
};

static int nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static void side_open(struct side *s)
{
	int a[2], b[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, a), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, b), 0);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(nonblock(a[i]), 0);
		assert_int_equal(nonblock(b[i]), 0);
	}
	memset(s, 0, sizeof(*s));
	s->broker = a[0];
	s->lib = b[0];
	gate_detach();
	assert_int_equal(gate_adopt(a[1], b[1]), 0);
}

static void side_close(struct side *s)
{
	gate_detach();
	close(s->broker);
	close(s->lib);
}

/* a QoS 1 PUBLISH (MQTT 3.1.1) of packet id mid to presence/1/2 */
static size_t publish_qos1(unsigned char *p, uint16_t mid)
{
	static const char topic[] = "presence/1/2", body[] = "{}";
	size_t tl = sizeof(topic) - 1, bl = sizeof(body) - 1, n = 0;

	p[n++] = 0x32;
	p[n++] = (unsigned char)(2 + tl + 2 + bl);
	p[n++] = 0;
	p[n++] = (unsigned char)tl;
	memcpy(p + n, topic, tl);
	n += tl;
	p[n++] = (unsigned char)(mid >> 8);
	p[n++] = (unsigned char)mid;
	memcpy(p + n, body, bl);
	return n + bl;
}

/* what the gate passed on: counted by packet type */
static void lib_drain(struct side *s)
{
	ssize_t n;
	size_t off = 0;

	while ((n = read(s->lib, s->in + s->in_len, sizeof(s->in) - s->in_len)) > 0)
		s->in_len += (size_t)n;
	while (off + 2 <= s->in_len) {
		size_t rem = s->in[off + 1]; /* every packet here is short */

		assert_true(rem < 128);
		if (off + 2 + rem > s->in_len)
			break;
		if ((s->in[off] & 0xf0) == 0x30)
			s->publishes++;
		else if (s->in[off] == 0xd0)
			s->pingresps++;
		off += 2 + rem;
	}
	memmove(s->in, s->in + off, s->in_len - off);
	s->in_len -= off;
}

/* the broker writes buf; the gate pumps; libmosquitto's side is read, until
 * nothing moves */
static void flow(struct side *s, const unsigned char *buf, size_t len)
{
	size_t sent = 0;
	int idle = 0;

	while (idle < 3) {
		size_t before = sent, got = s->publishes + s->pingresps;

		if (sent < len) {
			ssize_t n = write(s->broker, buf + sent, len - sent);

			if (n > 0)
				sent += (size_t)n;
		}
		assert_int_equal(gate_pump(), 0);
		lib_drain(s);
		idle = sent == before && s->publishes + s->pingresps == got ? idle + 1 : 0;
	}
}

/* libmosquitto answers messages first..first+n-1 (packet ids i % 65535 + 1) */
static void lib_pubacks(struct side *s, int first, int n)
{
	unsigned char *p = malloc((size_t)n * 4);
	size_t len = (size_t)n * 4, sent = 0;

	assert_non_null(p);
	for (int i = 0; i < n; i++) {
		uint16_t mid = (uint16_t)((first + i) % 65535 + 1);

		p[4 * i] = 0x40;
		p[4 * i + 1] = 0x02;
		p[4 * i + 2] = (unsigned char)(mid >> 8);
		p[4 * i + 3] = (unsigned char)mid;
	}
	for (int round = 0; sent < len && round < 10000; round++) {
		ssize_t w = write(s->lib, p + sent, len - sent);

		if (w > 0)
			sent += (size_t)w;
		assert_int_equal(gate_pump(), 0);
	}
	assert_int_equal(sent, len);
	free(p);
}

static size_t broker_read(struct side *s)
{
	unsigned char buf[65536];
	size_t total = 0;
	ssize_t n;

	while ((n = read(s->broker, buf, sizeof(buf))) > 0)
		total += (size_t)n;
	return total;
}

/* A broker that ignores the receive maximum: the gate passes GATE_HELD_MAX
 * QoS 1 messages, keeps the rest (and what follows them, in order) until
 * PUBACKs leave, then passes as many more as left. */
static void test_holds_back_beyond_held_max(void **state)
{
	enum { EXTRA = 300, ACKED = 100 };
	struct side *s = malloc(sizeof(*s));
	size_t len = 0, cap = (GATE_HELD_MAX + EXTRA) * 32 + 2;
	unsigned char *buf = malloc(cap);

	(void)state;
	assert_non_null(s);
	assert_non_null(buf);
	side_open(s);
	for (int i = 0; i < GATE_HELD_MAX + EXTRA; i++)
		len += publish_qos1(buf + len, (uint16_t)(i % 65535 + 1));
	buf[len++] = 0xd0; /* a PINGRESP after them */
	buf[len++] = 0x00;
	flow(s, buf, len);
	assert_int_equal(s->publishes, GATE_HELD_MAX);
	assert_int_equal(s->pingresps, 0);

	/* libmosquitto hands each to on_message and answers the first ACKED */
	for (int i = 0; i < GATE_HELD_MAX; i++)
		gate_note_message(i % 65535 + 1);
	lib_pubacks(s, 0, ACKED);
	flow(s, NULL, 0);
	assert_int_equal(gate_held(), ACKED);
	assert_int_equal(broker_read(s), 0); /* held until settled */
	assert_int_equal(s->publishes, GATE_HELD_MAX);

	/* settled: the PUBACKs leave, as many more messages come through */
	gate_release(ACKED);
	flow(s, NULL, 0);
	assert_int_equal(gate_held(), 0);
	assert_int_equal(broker_read(s), ACKED * 4);
	assert_int_equal(s->publishes, GATE_HELD_MAX + ACKED);
	assert_int_equal(s->pingresps, 0);

	/* all of them settled: the rest and the PINGRESP */
	lib_pubacks(s, ACKED, GATE_HELD_MAX - ACKED);
	for (int i = GATE_HELD_MAX; i < GATE_HELD_MAX + ACKED; i++)
		gate_note_message(i % 65535 + 1);
	flow(s, NULL, 0);
	gate_release(GATE_HELD_MAX);
	flow(s, NULL, 0);
	assert_int_equal(s->publishes, GATE_HELD_MAX + EXTRA);
	assert_int_equal(s->pingresps, 1);
	side_close(s);
	free(buf);
	free(s);
}

/* A length no MQTT packet has: the gate gives the connection up, and says why. */
static void test_broker_not_mqtt(void **state)
{
	static const unsigned char bad[] = {0x30, 0xff, 0xff, 0xff, 0xff, 0x01};
	struct side *s = malloc(sizeof(*s));

	(void)state;
	assert_non_null(s);
	side_open(s);
	assert_int_equal(write(s->broker, bad, sizeof(bad)), (ssize_t)sizeof(bad));
	assert_int_equal(gate_pump(), -1);
	assert_non_null(strstr(gate_lost_reason(), "not MQTT"));
	side_close(s);
	free(s);
}

/* A PUBACK for a message libmosquitto was never handed: refused, with why. */
static void test_puback_without_message(void **state)
{
	struct side *s = malloc(sizeof(*s));

	(void)state;
	assert_non_null(s);
	static const unsigned char ack[] = {0x40, 0x02, 0x00, 0x07};

	side_open(s);
	assert_int_equal(write(s->lib, ack, sizeof(ack)), (ssize_t)sizeof(ack));
	assert_int_equal(gate_pump(), -1);
	assert_non_null(strstr(gate_lost_reason(), "never saw"));
	side_close(s);
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_holds_back_beyond_held_max),
		cmocka_unit_test(test_broker_not_mqtt),
		cmocka_unit_test(test_puback_without_message),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
