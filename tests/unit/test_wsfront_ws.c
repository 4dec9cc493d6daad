/* Unit tests of the WebSocket front's frame decoder (realtime-bridge/front/
 * wsf.c) and of its edge choice (edge.c: rendezvous hashing, down-marks). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edge.h"
#include "shm.h"
#include "wsf.h"

struct got {
	uint8_t data[70000];
	size_t n;
	int ctl_op[8];
	uint8_t ctl[8][126];
	size_t ctl_n[8];
	int nctl;
};

static int on_data(void *user, const uint8_t *p, size_t n)
{
	struct got *g = user;

	memcpy(g->data + g->n, p, n);
	g->n += n;
	return 0;
}

static int on_control(void *user, int op, const uint8_t *p, size_t n)
{
	struct got *g = user;

	g->ctl_op[g->nctl] = op;
	if (n)
		memcpy(g->ctl[g->nctl], p, n);
	g->ctl_n[g->nctl++] = n;
	return 0;
}

/* a masked client frame into out */
static size_t frame(uint8_t *out, int fin, int op, const void *payload, size_t n)
{
	static const uint8_t mask[4] = {0x11, 0x22, 0x33, 0x44};
	size_t i = 0, k;

	out[i++] = (uint8_t)((fin ? 0x80 : 0) | op);
	if (n < 126) {
		out[i++] = (uint8_t)(0x80 | n);
	} else if (n < 65536) {
		out[i++] = 0x80 | 126;
		out[i++] = (uint8_t)(n >> 8);
		out[i++] = (uint8_t)n;
	} else {
		out[i++] = 0x80 | 127;
		for (k = 0; k < 8; k++)
			out[i++] = (uint8_t)((uint64_t)n >> (56 - 8 * k));
	}
	memcpy(out + i, mask, 4);
	i += 4;
	for (k = 0; k < n; k++)
		out[i + k] = ((const uint8_t *)payload)[k] ^ mask[k & 3];
	return i + n;
}

static enum wsf_err feed_chunks(struct wsf *w, uint8_t *s, size_t n, size_t chunk, struct got *g,
				uint64_t max)
{
	struct wsf_cb cb = {g, max, on_data, on_control};
	size_t i;

	for (i = 0; i < n; i += chunk) {
		enum wsf_err e = wsf_feed(w, s + i, n - i < chunk ? n - i : chunk, &cb);

		if (e != WSF_OK)
			return e;
	}
	return WSF_OK;
}

static void test_frames(void **state)
{
	static uint8_t stream[80000], copy[80000];
	static uint8_t big[300];
	static struct got g;
	size_t n = 0, chunk;

	(void)state;
	memset(big, 'b', sizeof(big));
	n += frame(stream + n, 1, WSF_BINARY, "hello", 5);
	n += frame(stream + n, 1, WSF_PING, "p1", 2);
	n += frame(stream + n, 0, WSF_BINARY, "ab", 2); /* a fragmented message */
	n += frame(stream + n, 0, WSF_CONT, "cd", 2);
	n += frame(stream + n, 1, WSF_PONG, "", 0); /* control frames may interleave */
	n += frame(stream + n, 1, WSF_CONT, big, sizeof(big));
	n += frame(stream + n, 1, WSF_BINARY, "", 0);
	n += frame(stream + n, 1, WSF_CLOSE, "\x03\xe8", 2);
	for (chunk = 1; chunk <= n; chunk = chunk < 16 ? chunk + 1 : chunk * 3) {
		struct wsf w = {0};

		memset(&g, 0, sizeof(g));
		memcpy(copy, stream, n);
		assert_int_equal(feed_chunks(&w, copy, n, chunk, &g, 65536), WSF_OK);
		assert_int_equal(g.n, 9 + sizeof(big));
		assert_memory_equal(g.data, "helloabcd", 9);
		assert_memory_equal(g.data + 9, big, sizeof(big));
		assert_int_equal(g.nctl, 3);
		assert_int_equal(g.ctl_op[0], WSF_PING);
		assert_int_equal(g.ctl_n[0], 2);
		assert_memory_equal(g.ctl[0], "p1", 2);
		assert_int_equal(g.ctl_op[1], WSF_PONG);
		assert_int_equal(g.ctl_op[2], WSF_CLOSE);
		assert_memory_equal(g.ctl[2], "\x03\xe8", 2);
		assert_null(w.ctl);
		wsf_reset(&w);
	}
}

static enum wsf_err one(const uint8_t *bytes, size_t n, uint64_t max)
{
	static struct got g;
	uint8_t copy[64];
	struct wsf w = {0};
	enum wsf_err e;

	memset(&g, 0, sizeof(g));
	memcpy(copy, bytes, n);
	e = feed_chunks(&w, copy, n, n, &g, max);
	wsf_reset(&w);
	return e;
}

static void test_errors(void **state)
{
	uint8_t f[200];
	size_t n;

	(void)state;
	n = frame(f, 1, WSF_TEXT, "hi", 2);
	assert_int_equal(one(f, n, 65536), WSF_NOT_BINARY);
	assert_int_equal(wsf_close_code(WSF_NOT_BINARY), 1003);
	/* unmasked */
	assert_int_equal(one((const uint8_t *)"\x82\x02hi", 4, 65536), WSF_PROTOCOL);
	/* RSV1 */
	n = frame(f, 1, WSF_BINARY, "hi", 2);
	f[0] |= 0x40;
	assert_int_equal(one(f, n, 65536), WSF_PROTOCOL);
	/* a continuation without a message, a new message inside one */
	n = frame(f, 1, WSF_CONT, "hi", 2);
	assert_int_equal(one(f, n, 65536), WSF_PROTOCOL);
	n = frame(f, 0, WSF_BINARY, "hi", 2);
	n += frame(f + n, 1, WSF_BINARY, "hi", 2);
	assert_int_equal(one(f, n, 65536), WSF_PROTOCOL);
	/* fragmented or long control frames, unknown opcodes */
	n = frame(f, 0, WSF_PING, "hi", 2);
	assert_int_equal(one(f, n, 65536), WSF_PROTOCOL);
	n = frame(f, 1, WSF_PING, f, 126);
	assert_int_equal(one(f, 8, 65536), WSF_PROTOCOL); /* decided on the header */
	n = frame(f, 1, 3, "hi", 2);
	assert_int_equal(one(f, n, 65536), WSF_PROTOCOL);
	/* over the limit: decided on the header, before any payload */
	assert_int_equal(one((const uint8_t *)"\x82\xff\x00\x00\x00\x00\x00\x01\x00\x01mask", 14,
			     65536),
			 WSF_TOO_BIG);
	assert_int_equal(one((const uint8_t *)"\x82\xfe\xff\xffmask", 8, 65535),
			 WSF_OK); /* exactly */
	assert_int_equal(one((const uint8_t *)"\x82\xfe\xff\xffmask", 8, 65534), WSF_TOO_BIG);
	assert_int_equal(wsf_close_code(WSF_TOO_BIG), 1009);
	/* a 64-bit length with the top bit */
	assert_int_equal(one((const uint8_t *)"\x82\xff\x80\x00\x00\x00\x00\x00\x00\x01mask", 14,
			     UINT64_MAX),
			 WSF_PROTOCOL);
}

static void test_partial_control_freed(void **state)
{
	static struct got g;
	uint8_t f[64];
	size_t n = frame(f, 1, WSF_PING, "0123456789", 10);
	struct wsf w = {0};

	(void)state;
	memset(&g, 0, sizeof(g));
	/* half a ping: its payload is held, and freed by wsf_reset (ASan: no leak) */
	assert_int_equal(feed_chunks(&w, f, n - 4, n - 4, &g, 65536), WSF_OK);
	assert_non_null(w.ctl);
	wsf_reset(&w);
	assert_null(w.ctl);
}

static void test_rendezvous(void **state)
{
	struct edge e[4];
	char err[128];
	int order[4], counts[4] = {0}, moved = 0, pos;
	struct shm *s = shm_create();
	int64_t uid;

	(void)state;
	assert_non_null(s);
	assert_int_equal(edge_parse_list("127.0.0.1:1,127.0.0.1:2,127.0.0.1:3,127.0.0.1:4", e, 4,
					 err, sizeof(err)),
			 4);
	assert_int_equal(edge_parse_list("127.0.0.1:1,127.0.0.1:2", e, 1, err, sizeof(err)), -1);
	assert_int_equal(edge_parse_list("localhost:1", e, 4, err, sizeof(err)), -1);
	assert_int_equal(edge_parse_list("127.0.0.1:0", e, 4, err, sizeof(err)), -1);
	assert_int_equal(edge_parse_list("", e, 4, err, sizeof(err)), -1);
	/* a local broker's unix socket: dialed instead, the identity (name, weight) unchanged */
	assert_int_equal(edge_parse_list("127.0.0.1:2@/run/th/e1.sock,127.0.0.1:3", e, 4, err,
					 sizeof(err)),
			 2);
	assert_int_equal(e[0].un.sun_family, AF_UNIX);
	assert_string_equal(e[0].un.sun_path, "/run/th/e1.sock");
	assert_string_equal(e[0].name, "127.0.0.1:2");
	assert_int_equal(ntohs(e[0].addr.sin_port), 2);
	assert_int_equal(e[1].un.sun_family, 0);
	{
		struct edge plain[1];

		assert_int_equal(edge_parse_list("127.0.0.1:2", plain, 1, err, sizeof(err)), 1);
		assert_true(plain[0].seed == e[0].seed);
	}
	assert_int_equal(edge_parse_list("127.0.0.1:2@relative.sock", e, 4, err, sizeof(err)), -1);
	assert_int_equal(edge_parse_list("127.0.0.1:2@", e, 4, err, sizeof(err)), -1);
	{
		char longp[125]; /* a path of 112 bytes: over sun_path */

		memset(longp, 'a', sizeof(longp) - 1);
		longp[0] = '/';
		longp[sizeof(longp) - 1] = '\0';
		memcpy(longp, "127.0.0.1:2@/", 13);
		assert_int_equal(edge_parse_list(longp, e, 4, err, sizeof(err)), -1);
	}
	assert_int_equal(edge_parse_list("127.0.0.1:1,127.0.0.1:2,127.0.0.1:3,127.0.0.1:4", e, 4,
					 err, sizeof(err)),
			 4);
	for (uid = 1; uid <= 4000; uid++) {
		int again[4];

		edge_rank(e, 4, uid, order);
		edge_rank(e, 4, uid, again);
		assert_memory_equal(order, again, sizeof(order)); /* stable */
		counts[order[0]]++;
		/* edge 0 down: its users go to their second choice, the others stay */
		shm_edge_mark_down(s, 0, 1000);
		assert_int_equal(edge_pick(s, order, 4, 0, 500, &pos),
				 order[0] == 0 ? order[1] : order[0]);
		if (order[0] == 0)
			moved++;
		/* the mark expires */
		assert_int_equal(edge_pick(s, order, 4, 0, 1000, &pos), order[0]);
		shm_edge_mark_down(s, 0, 0);
	}
	/* spread: each edge gets a fair share (expected 1000 each) */
	for (int i = 0; i < 4; i++)
		assert_in_range(counts[i], 800, 1200);
	assert_int_equal(moved, counts[0]);
	/* a dead edge's users spread over the others, not onto one */
	{
		int second[4] = {0};

		for (uid = 1; uid <= 4000; uid++) {
			edge_rank(e, 4, uid, order);
			if (order[0] == 0)
				second[order[1]]++;
		}
		for (int i = 1; i < 4; i++)
			assert_in_range(second[i], counts[0] / 3 - 120, counts[0] / 3 + 120);
	}
	/* the weight does not depend on the list order */
	{
		struct edge r[2];
		int o1[2], o2[2];

		assert_int_equal(edge_parse_list("127.0.0.1:7,127.0.0.1:8", r, 2, err, sizeof(err)),
				 2);
		edge_rank(r, 2, 77, o1);
		assert_int_equal(edge_parse_list("127.0.0.1:8,127.0.0.1:7", r, 2, err, sizeof(err)),
				 2);
		edge_rank(r, 2, 77, o2);
		assert_string_not_equal(r[o1[0]].name, r[o2[0]].name);
	}
	/* all down: none */
	for (int i = 0; i < 4; i++)
		shm_edge_mark_down(s, i, 1000);
	assert_int_equal(edge_pick(s, order, 4, 0, 10, &pos), -1);
}

static void test_addr_table(void **state)
{
	struct shm *s = shm_create();
	uint8_t a[16] = {[10] = 0xff, [11] = 0xff, [12] = 127, [15] = 1}, b[16];

	(void)state;
	assert_non_null(s);
	memcpy(b, a, 16);
	b[15] = 2;
	assert_int_equal(shm_addr_acquire(s, 0, a, 3), 0);
	assert_int_equal(shm_addr_acquire(s, 1, a, 3), 0);
	assert_int_equal(shm_addr_acquire(s, 1, a, 3), 0);
	assert_int_equal(shm_addr_acquire(s, 0, a, 3), -1); /* across workers */
	assert_int_equal(shm_addr_acquire(s, 0, b, 3), 0);  /* another address */
	shm_addr_release(s, 1, a);
	assert_int_equal(shm_addr_acquire(s, 0, a, 3), 0);
	/* a dead worker's share is given back */
	shm_worker_reset(s, 1);
	assert_int_equal(shm_addr_acquire(s, 0, a, 3), 0);
	assert_int_equal(shm_addr_acquire(s, 0, a, 3), -1);
}

/* IPv6 is capped per /64: the addresses of one /64 share a count, another
 * /64 has its own */
static void test_addr_table_v6(void **state)
{
	struct shm *s = shm_create();
	uint8_t a[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1, [15] = 1}, b[16], c[16];

	(void)state;
	assert_non_null(s);
	memcpy(b, a, 16);
	b[8] = 0xab; /* same /64, another interface id */
	b[15] = 9;
	memcpy(c, a, 16);
	c[7] = 2; /* the next /64 */
	assert_int_equal(shm_addr_acquire(s, 0, a, 2), 0);
	assert_int_equal(shm_addr_acquire(s, 1, b, 2), 0);
	assert_int_equal(shm_addr_acquire(s, 0, b, 2), -1);
	assert_int_equal(shm_addr_acquire(s, 0, c, 2), 0);
	shm_addr_release(s, 0, a); /* a release by any address of the /64 */
	assert_int_equal(shm_addr_acquire(s, 0, b, 2), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_frames),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_partial_control_freed),
		cmocka_unit_test(test_rendezvous),
		cmocka_unit_test(test_addr_table),
		cmocka_unit_test(test_addr_table_v6),
	};

	return cmocka_run_group_tests_name("wsfront frames and edges", tests, NULL, NULL);
}
