/* fuzz_mqttpeek: what the WebSocket front does with a client's bytes after
 * the handshake (realtime-bridge/front): the frame decoder (wsf.c), the
 * MQTT framer (peek.c) on the unmasked data, and the CONNECT parser and
 * will rules (mconn.c) on the first packet.
 *
 * Input: a byte (chunk size for the feed, 1..256), then the frames.
 * Checks: the decoder gives the same data and control frames whole or in
 * chunks; no packet over the limit is passed (the framer's output parses as
 * whole packets of at most MAX bytes plus an incomplete last one); a
 * CONNECT the parser accepts has a u<id>- client id with that id, and a
 * will that passes is on the user's own chat/typing/signal topic, not
 * retained, within 16 KiB. */
#include "fuzz.h"
#include "mconn.h"
#include "peek.h"
#include "topic.h"
#include "wsf.h"

#define MAX 4096 /* a small packet limit: the fuzzer reaches it */

struct sink {
	uint8_t *data;
	size_t n, cap;
	struct peek pk;
	int peek_err;
	uint8_t *fwd; /* what the framer passed */
	size_t fwd_n;
	unsigned nctl;
};

static int on_data(void *user, const uint8_t *p, size_t n)
{
	struct sink *s = user;
	uint8_t out[300];
	size_t o;

	FZ_CHECK(s->n + n <= s->cap);
	memcpy(s->data + s->n, p, n);
	s->n += n;
	if (s->peek_err)
		return 0;
	/* the framer, in pieces the size the decoder gave (at most 256 here) */
	FZ_CHECK(n <= 256);
	s->peek_err = peek_feed(&s->pk, p, n, MAX, out, &o);
	FZ_CHECK(o <= n + 5);
	memcpy(s->fwd + s->fwd_n, out, o);
	s->fwd_n += o;
	return 0;
}

static int on_control(void *user, int op, const uint8_t *p, size_t n)
{
	struct sink *s = user;

	(void)p;
	FZ_CHECK(op == WSF_CLOSE || op == WSF_PING || op == WSF_PONG);
	FZ_CHECK(n <= 125);
	s->nctl++;
	return 0;
}

/* the passed bytes are whole packets of at most MAX, then a partial one */
static void packets_ok(const uint8_t *b, size_t n)
{
	size_t i = 0;
	int first = 1;

	while (i < n) {
		uint32_t rl;
		int k = peek_varint(b + i + 1, n - i - 1, &rl);

		FZ_CHECK(k > 0); /* a header is passed only once complete */
		FZ_CHECK(1 + (size_t)k + rl <= MAX);
		if (first)
			FZ_CHECK(b[i] == 0x10);
		first = 0;
		i += 1 + (size_t)k + rl;
	}
}

static void connect_ok(const uint8_t *b, size_t n)
{
	struct mconn m;
	enum mconn_result r = mconn_parse(b, n, &m);
	uint8_t ack[5];

	if (r != MCONN_OK) {
		FZ_CHECK(mconn_connack(m.version ? m.version : 4, r, ack) >= 4);
		return;
	}
	FZ_CHECK(m.uid > 0 && m.cid_len >= 3 && m.cid[0] == 'u');
	{
		char num[24];
		int l = snprintf(num, sizeof(num), "u%lld-", (long long)m.uid);

		FZ_CHECK((size_t)l <= m.cid_len && memcmp(m.cid, num, (size_t)l) == 0);
	}
	if (mconn_will_check(&m) == MCONN_OK && m.will) {
		char topic[260];
		struct topic t;
		enum topic_kind k;

		FZ_CHECK(m.will_topic_len < sizeof(topic));
		memcpy(topic, m.will_topic, m.will_topic_len);
		topic[m.will_topic_len] = '\0';
		k = topic_parse(topic, 0, &t);
		FZ_CHECK(k == TOPIC_CHAT || k == TOPIC_TYPING || k == TOPIC_SIGNAL);
		FZ_CHECK(k == TOPIC_SIGNAL ? t.id[2] == m.uid : t.id[1] == m.uid);
		FZ_CHECK(!m.will_retain);
		FZ_CHECK(m.will_payload_len + m.will_props_len <= 16384);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz f = {data, size};
	size_t chunk = fz_byte(&f) + 1, n, i;
	char *in = fz_rest(&f, &n);
	uint8_t *a = malloc(n + 1), *b = malloc(n + 1);
	struct sink whole = {malloc(n + 1), 0, n, {0}, 0, malloc(n + 64), 0, 0};
	struct sink cut = {malloc(n + 1), 0, n, {0}, 0, malloc(n + 64), 0, 0};
	struct wsf w1 = {0}, w2 = {0};
	enum wsf_err e1, e2 = WSF_OK;

	if (!a || !b || !whole.data || !cut.data || !whole.fwd || !cut.fwd)
		abort();
	memcpy(a, in, n);
	memcpy(b, in, n);
	{
		/* whole: in pieces of at most 256 (the framer's check above) */
		struct wsf_cb cb = {&whole, MAX, on_data, on_control};

		e1 = WSF_OK;
		for (i = 0; i < n && e1 == WSF_OK; i += 256)
			e1 = wsf_feed(&w1, a + i, n - i < 256 ? n - i : 256, &cb);
	}
	{
		struct wsf_cb cb = {&cut, MAX, on_data, on_control};

		for (i = 0; i < n && e2 == WSF_OK; i += chunk)
			e2 = wsf_feed(&w2, b + i, n - i < chunk ? n - i : chunk, &cb);
	}
	FZ_CHECK(e1 == e2);
	FZ_CHECK(whole.n == cut.n && memcmp(whole.data, cut.data, whole.n) == 0);
	FZ_CHECK(whole.nctl == cut.nctl);
	FZ_CHECK(whole.peek_err == cut.peek_err);
	FZ_CHECK(whole.fwd_n == cut.fwd_n && memcmp(whole.fwd, cut.fwd, whole.fwd_n) == 0);
	packets_ok(whole.fwd, whole.fwd_n);
	if (whole.pk.first_done)
		connect_ok(whole.fwd, whole.pk.connect_len);
	/* the data itself as an MQTT stream too (no frames around it) */
	{
		struct peek p = {0};
		uint8_t *out = malloc(n + 8);
		size_t o = 0;

		if (!out)
			abort();
		if (peek_feed(&p, (const uint8_t *)in, n, MAX, out, &o) == PEEK_OK) {
			packets_ok(out, o);
			if (p.first_done)
				connect_ok(out, p.connect_len);
		}
		free(out);
	}
	wsf_reset(&w1);
	wsf_reset(&w2);
	free(whole.data);
	free(cut.data);
	free(whole.fwd);
	free(cut.fwd);
	free(a);
	free(b);
	free(in);
	return 0;
}
