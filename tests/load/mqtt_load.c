/* th-mqtt_load: MQTT 3.1.1 over WebSocket load generator (one thread, epoll),
 * used by the mqtt part of scripts/bench.  Loopback only, bounded in time and
 * count, exits by itself.
 *
 * Just enough of both protocols: the WebSocket client handshake (subprotocol
 * "mqtt"), masked binary frames out, unmasked frames in (ping answered, close
 * honoured), and MQTT CONNECT/CONNACK, SUBSCRIBE/SUBACK, PUBLISH QoS 0,
 * PINGREQ/PINGRESP.
 *
 * Usage: th-mqtt_load MODE [options]
 *   conn  Open -n connections (indices -s .. -s+n-1) from source address -b,
 *         each authenticated with line (index mod lines) of the credentials
 *         file, client id u<uid>-<index>, and subscribed to chat/<channel>/+.
 *         Prints "ready ok=.. failed=.. ..." once every connection is
 *         subscribed or has failed, then counts the PUBLISH packets that
 *         arrive until each ready connection has -e of them or the deadline
 *         -T passes, and prints "recv ...".
 *   fan   -n subscribers on chat/<channel>/+ and one publisher (the
 *         credentials line given by -u) on the same endpoint.  Publishes
 *         chat payloads {"id": uuid, "body": "..."} carrying a CLOCK_MONOTONIC
 *         timestamp: -w s of warm-up, then -d s at -r msg/s (open loop, the
 *         timestamp is the scheduled send time), then, if -W > 0, -d s as fast
 *         as a window of -W messages not yet delivered to every subscriber
 *         allows.  Prints "rate ..." and "max ..." lines: counts and
 *         publish->deliver latency p50/p99/max (ms) over every delivery.
 *   pub   Connect once (credentials line -u, or -U user -p password for a
 *         service account) and publish one message per distinct channel of
 *         the credentials file to chat/<channel>/<uid> (uid: the publisher's
 *         own; the service account: each line's), then disconnect.
 *
 * Options: -h host (127.0.0.1) -p port -P path (/mqtt) -b source address
 *   -c credentials file (lines "uid channel_id token"; a token "-" means
 *   anonymous) -s start -n count -C handshakes in flight (256) -k keepalive s
 *   (300) -T deadline s (120) -e messages expected per connection (1)
 *   -u publisher line (0) -U user -X password -r rate -d seconds -w warm-up s
 *   -W window -G s a fan phase's stragglers are waited for (3). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "loadlib.h"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

enum st { ST_TCP, ST_WS, ST_CONNACK, ST_SUBACK, ST_READY, ST_DEAD };


struct conn {
	int fd;
	long long idx;
	enum st st;
	int role;     /* 0 subscriber, 1 publisher, 2 service account */
	int want_out; /* EPOLLOUT registered */
	const struct ll_cred *cr;
	struct ll_buf in, mq, out;
	int64_t t0, last_tx;
	uint32_t got;
};

/* ---- options and state ---------------------------------------------------- */
static const char *host = "127.0.0.1", *path = "/mqtt", *src, *creds_file;
static const char *svc_user, *svc_pass;
static int port, keepalive = 300, inflight_max = 256, pub_line;
static long long start_idx, count = 1;
static double deadline_s = 120, rate = 1000, dur = 10, warm = 2;
/* fan: how long each phase's stragglers are waited for after it (-G) */
static double drain_s = 3;
static int window, expect = 1;

static struct ll_cred *creds;
static size_t ncreds;
static struct conn *conns;
static size_t nconns;
static int ep;
static uint64_t rng = 0x9e3779b97f4a7c15ull;

/* counters */
static long long n_ok, n_fail, n_refused, n_timeout, n_closed, n_subfail, n_inflight;
static long long next_open;
static int64_t t_first_conn, t_last_ready;
static long long msgs_total, msgs_extra;
static int64_t t_first_msg, t_last_msg;
static volatile sig_atomic_t stop;

/* latency histogram: 1 us buckets up to 2 s, then an overflow count */
#define HMAX 2000000
static struct ll_hist h_bcast = {.lim_us = HMAX}, h_rate = {.lim_us = HMAX},
		      h_max = {.lim_us = HMAX};
static int phase; /* fan: 0 warm-up, 1 rate, 2 max, 3 done */
static long long fan_sent[3], fan_deliv[3];

static int64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* ---- output ---------------------------------------------------------------------- */
static void conn_close(struct conn *c, enum st why_dead);

static void flush_out(struct conn *c)
{
	while (c->out.len) {
		ssize_t w = send(c->fd, c->out.p, c->out.len, MSG_NOSIGNAL);

		if (w < 0) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			conn_close(c, ST_DEAD);
			return;
		}
		ll_buf_drop(&c->out, (size_t)w);
	}
	/* EPOLLOUT only while something waits to be written */
	if (c->fd >= 0 && (c->out.len > 0) != c->want_out) {
		struct epoll_event ev = {.events = EPOLLIN | (c->out.len ? EPOLLOUT : 0u),
					 .data.ptr = c};

		c->want_out = c->out.len > 0;
		epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
	}
}

/* one masked binary WebSocket frame around an MQTT packet */
static void ws_send(struct conn *c, int opcode, const unsigned char *d, size_t n)
{
	unsigned char hdr[14], mask[4];
	size_t h = 0;
	uint32_t m = (uint32_t)rnd();
	unsigned char tmp[2048], *p = tmp;
	int pending = c->out.len > 0;

	hdr[h++] = (unsigned char)(0x80 | opcode);
	if (n < 126) {
		hdr[h++] = (unsigned char)(0x80 | n);
	} else if (n < 65536) {
		hdr[h++] = 0x80 | 126;
		hdr[h++] = (unsigned char)(n >> 8);
		hdr[h++] = (unsigned char)n;
	} else {
		hdr[h++] = 0x80 | 127;
		for (int i = 7; i >= 0; i--)
			hdr[h++] = (unsigned char)((uint64_t)n >> (8 * i));
	}
	memcpy(mask, &m, 4);
	memcpy(hdr + h, mask, 4);
	h += 4;
	if (n > sizeof(tmp) && !(p = malloc(n)))
		ll_die("out of memory");
	for (size_t i = 0; i < n; i++)
		p[i] = d[i] ^ mask[i & 3];
	ll_buf_add(&c->out, hdr, h);
	ll_buf_add(&c->out, p, n);
	if (p != tmp)
		free(p);
	if (!pending)
		flush_out(c);
	c->last_tx = ll_now_ns();
}

/* sends one encoded MQTT packet in a binary frame; 0 (did not fit) is a bug
 * in the caller's sizes */
static void ws_send_mqtt(struct conn *c, const unsigned char *pk, size_t n)
{
	if (!n)
		ll_die("packet too big");
	ws_send(c, 2, pk, n);
}

static void mqtt_connect(struct conn *c)
{
	char cid[64];
	const char *user = "bench", *pass = NULL;
	unsigned char pk[8192];

	if (c->role == 2) {
		snprintf(cid, sizeof(cid), "svc-bench-%d", (int)getpid());
		user = svc_user;
		pass = svc_pass;
	} else {
		snprintf(cid, sizeof(cid), "u%lld-%lld", c->cr->uid, c->idx);
		if (strcmp(c->cr->token, "-") != 0)
			pass = c->cr->token;
	}
	ws_send_mqtt(c, pk, ll_mqtt_connect(pk, sizeof(pk), cid, user, pass, (unsigned)keepalive));
}

static void mqtt_subscribe(struct conn *c)
{
	char topic[64];
	unsigned char pk[96];

	snprintf(topic, sizeof(topic), "chat/%lld/+", c->cr->chid);
	ws_send_mqtt(c, pk, ll_mqtt_subscribe(pk, sizeof(pk), topic, 0));
}

static void mqtt_publish(struct conn *c, const char *topic, const char *payload, size_t n)
{
	unsigned char pk[1024];
	size_t k = ll_mqtt_publish(pk, sizeof(pk), topic, 0, 0, payload, n);

	if (!k)
		ll_die("publish too big");
	ws_send(c, 2, pk, k);
}

static void uuid4(char out[37])
{
	static const char hx[] = "0123456789abcdef";
	uint64_t a = rnd(), b = rnd();
	int k = 0;

	for (int i = 0; i < 32; i++) {
		uint64_t v = i < 16 ? a >> (4 * i) : b >> (4 * (i - 16));
		int d = (int)(v & 15);

		if (i == 12)
			d = 4;
		if (i == 16)
			d = 8 | (d & 3);
		if (i == 8 || i == 12 || i == 16 || i == 20)
			out[k++] = '-';
		out[k++] = hx[d];
	}
	out[k] = '\0';
}

/* {"id": uuid, "body": "bench <phase> <seq> <t_ns> ..."}: valid for the plugin */
static size_t chat_payload(char *out, size_t cap, int ph, long long seq, int64_t t)
{
	char id[37];

	uuid4(id);
	return (size_t)snprintf(out, cap,
				"{\"id\":\"%s\",\"body\":\"bench %d %lld %" PRId64
				" an ordinary chat line of about a hundred characters.\"}",
				id, ph, seq, t);
}

/* ---- connections ----------------------------------------------------------------- */
static void conn_close(struct conn *c, enum st why)
{
	if (c->fd < 0)
		return;
	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->fd = -1;
	if (c->st != ST_READY) {
		n_fail++;
		n_inflight--;
	} else if (why == ST_DEAD) {
		n_closed++;
	}
	c->st = ST_DEAD;
	ll_buf_free(&c->in);
	ll_buf_free(&c->mq);
	ll_buf_free(&c->out);
}

static void conn_open(struct conn *c)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN, .data.ptr = c};
	int one = 1;

	c->t0 = ll_now_ns();
	if (!t_first_conn)
		t_first_conn = c->t0;
	c->st = ST_TCP;
	c->want_out = 1; /* registered below with EPOLLOUT, for the connect */
	n_inflight++;
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		c->st = ST_TCP;
		n_fail++;
		n_inflight--;
		c->st = ST_DEAD;
		fprintf(stderr, "socket: %s\n", strerror(errno));
		return;
	}
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (src) {
		struct sockaddr_in s = {.sin_family = AF_INET};

		setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
		inet_pton(AF_INET, src, &s.sin_addr);
		if (bind(c->fd, (struct sockaddr *)&s, sizeof(s)) < 0) {
			fprintf(stderr, "bind %s: %s\n", src, strerror(errno));
			conn_close(c, ST_DEAD);
			return;
		}
	}
	inet_pton(AF_INET, host, &a.sin_addr);
	if (connect(c->fd, (struct sockaddr *)&a, sizeof(a)) < 0 && errno != EINPROGRESS) {
		conn_close(c, ST_DEAD);
		return;
	}
	epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
}

static void ws_handshake(struct conn *c)
{
	char req[512];
	unsigned char key[16];
	char k64[32];
	static const char b64[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	int n, j = 0;

	for (int i = 0; i < 16; i++)
		key[i] = (unsigned char)rnd();
	for (int i = 0; i < 15; i += 3) {
		uint32_t v = (uint32_t)key[i] << 16 | (uint32_t)key[i + 1] << 8 | key[i + 2];

		k64[j++] = b64[v >> 18 & 63];
		k64[j++] = b64[v >> 12 & 63];
		k64[j++] = b64[v >> 6 & 63];
		k64[j++] = b64[v & 63];
	}
	k64[j++] = b64[key[15] >> 2];
	k64[j++] = b64[(key[15] & 3) << 4];
	k64[j++] = '=';
	k64[j++] = '=';
	k64[j] = '\0';
	n = snprintf(req, sizeof(req),
		     "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
		     "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
		     "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n",
		     path, host, port, k64);
	ll_buf_add(&c->out, req, (size_t)n);
	c->st = ST_WS;
	flush_out(c);
}

static void on_ready(struct conn *c)
{
	c->st = ST_READY;
	n_ok++;
	n_inflight--;
	t_last_ready = ll_now_ns();
}

static void on_publish(struct conn *c, const unsigned char *p, size_t n)
{
	size_t tl;
	const char *body;
	int ph;
	long long seq;
	int64_t t, now = ll_now_ns();

	if (n < 2)
		return;
	tl = (size_t)p[0] << 8 | p[1];
	if (2 + tl > n)
		return;
	c->got++;
	msgs_total++;
	if (!t_first_msg)
		t_first_msg = now;
	t_last_msg = now;
	/* payload: find "bench <phase> <seq> <t>" */
	body = memmem(p + 2 + tl, n - 2 - tl, "\"body\":\"bench ", 14);
	if (!body || sscanf(body + 14, "%d %lld %" SCNd64, &ph, &seq, &t) != 3)
		return;
	if (ph == 9) {
		ll_hist_add(&h_bcast, now - t);
	} else if (ph >= 0 && ph <= 2) {
		fan_deliv[ph]++;
		if (ph == 1)
			ll_hist_add(&h_rate, now - t);
		else if (ph == 2)
			ll_hist_add(&h_max, now - t);
	}
}

/* MQTT packets out of the WebSocket payload stream */
static void mqtt_input(struct conn *c)
{
	size_t off = 0;

	while (c->fd >= 0 && c->mq.len - off >= 2) {
		const unsigned char *p = c->mq.p + off;
		size_t rl, k;
		int got = ll_mqtt_split(p, c->mq.len - off, &k, &rl);

		if (got < 0) {
			conn_close(c, ST_DEAD);
			return;
		}
		if (!got)
			break;
		switch (p[0] >> 4) {
		case 2: /* CONNACK */
			if (rl < 2 || p[k + 1] != 0) {
				n_refused++;
				conn_close(c, ST_DEAD);
				return;
			}
			if (c->role == 0) {
				c->st = ST_SUBACK;
				mqtt_subscribe(c);
			} else {
				on_ready(c);
			}
			break;
		case 9: /* SUBACK */
			if (rl < 3 || p[k + 2] == 0x80) {
				n_subfail++;
				conn_close(c, ST_DEAD);
				return;
			}
			on_ready(c);
			break;
		case 3:
			on_publish(c, p + k, rl);
			break;
		default: /* PINGRESP and the rest */
			break;
		}
		off += k + rl;
	}
	if (c->fd >= 0 && off)
		ll_buf_drop(&c->mq, off);
}

/* WebSocket frames (server to client: unmasked) */
static void ws_input(struct conn *c)
{
	size_t off = 0;

	while (c->fd >= 0 && c->in.len - off >= 2) {
		const unsigned char *p = c->in.p + off;
		size_t avail = c->in.len - off, h;
		uint64_t n;
		int op, masked; /* a masking server is not expected; its payload is skipped over */

		if (!ll_ws_frame(p, avail, &op, &masked, &h, &n) || n > avail - h)
			break;
		if (op == 0 || op == 2) {
			ll_buf_add(&c->mq, p + h, (size_t)n);
		} else if (op == 8) {
			conn_close(c, ST_DEAD);
			return;
		} else if (op == 9) {
			ws_send(c, 10, p + h, (size_t)n);
		}
		off += h + (size_t)n;
	}
	if (c->fd >= 0 && off)
		ll_buf_drop(&c->in, off);
	if (c->fd >= 0 && c->mq.len)
		mqtt_input(c);
}

static void on_readable(struct conn *c)
{
	unsigned char tmp[65536];

	for (;;) {
		ssize_t r = recv(c->fd, tmp, sizeof(tmp), 0);

		if (r < 0) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			conn_close(c, ST_DEAD);
			return;
		}
		if (r == 0) {
			conn_close(c, ST_DEAD);
			return;
		}
		ll_buf_add(&c->in, tmp, (size_t)r);
		if ((size_t)r < sizeof(tmp))
			break;
	}
	if (c->st == ST_WS) {
		unsigned char *e = memmem(c->in.p, c->in.len, "\r\n\r\n", 4);
		size_t hl;

		if (!e)
			return;
		hl = (size_t)(e - c->in.p) + 4;
		if (c->in.len < 12 || memcmp(c->in.p + 9, "101", 3) != 0) {
			conn_close(c, ST_DEAD);
			return;
		}
		ll_buf_drop(&c->in, hl);
		c->st = ST_CONNACK;
		mqtt_connect(c);
		if (c->fd < 0)
			return;
	}
	ws_input(c);
}

static void on_event(struct conn *c, uint32_t evs)
{
	if (c->fd < 0)
		return;
	if (c->st == ST_TCP) {
		int err = 0;
		socklen_t l = sizeof(err);

		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l) < 0 || err) {
			conn_close(c, ST_DEAD);
			return;
		}
		if (!(evs & (EPOLLOUT | EPOLLIN)))
			return;
		ws_handshake(c);
		return;
	}
	if (evs & (EPOLLIN | EPOLLHUP | EPOLLERR))
		on_readable(c);
	if (c->fd >= 0 && (evs & EPOLLOUT))
		flush_out(c);
}

/* waits at most timeout_ns (an overdue deadline: no wait) */
static void poll_ns(int64_t timeout_ns)
{
	struct epoll_event evs[512];
	struct timespec ts;
	int n;

	if (timeout_ns < 0)
		timeout_ns = 0;
	ts.tv_sec = timeout_ns / 1000000000;
	ts.tv_nsec = timeout_ns % 1000000000;
	n = epoll_pwait2(ep, evs, 512, &ts, NULL);

	for (int i = 0; i < n; i++)
		on_event(evs[i].data.ptr, evs[i].events);
}

static void poll_once(int timeout_ms)
{
	struct epoll_event evs[512];
	int n = epoll_wait(ep, evs, 512, timeout_ms);

	for (int i = 0; i < n; i++)
		on_event(evs[i].data.ptr, evs[i].events);
}

/* keepalive: PINGREQ on idle connections, handshake timeouts */
static void housekeeping(int64_t now)
{
	static int64_t last;
	static const unsigned char ping[2] = {0xC0, 0};

	if (now - last < 1000000000)
		return;
	last = now;
	for (size_t i = 0; i < nconns; i++) {
		struct conn *c = &conns[i];

		if (c->fd < 0)
			continue;
		if (c->st != ST_READY && now - c->t0 > 30 * 1000000000LL) {
			n_timeout++;
			conn_close(c, ST_DEAD);
		} else if (c->st == ST_READY &&
			   now - c->last_tx > (int64_t)keepalive * 500000000LL) {
			ws_send(c, 2, ping, 2);
		}
	}
}

static void on_signal(int s)
{
	(void)s;
	stop = 1;
}

static void setup_conns(size_t n)
{
	nconns = n;
	conns = calloc(n, sizeof(*conns));
	if (!conns)
		ll_die("out of memory");
	for (size_t i = 0; i < n; i++) {
		conns[i].fd = -1;
		conns[i].st = ST_DEAD;
		conns[i].idx = start_idx + (long long)i;
		conns[i].cr = &creds[(size_t)conns[i].idx % ncreds];
	}
}

/* opens conns[from..to) with at most inflight_max handshakes at a time */
static void connect_all(size_t from, size_t to, int64_t until)
{
	next_open = (long long)from;
	while (!stop && ll_now_ns() < until) {
		while (next_open < (long long)to && n_inflight < inflight_max)
			conn_open(&conns[next_open++]);
		if (next_open >= (long long)to && n_inflight == 0)
			break;
		poll_once(10);
		housekeeping(ll_now_ns());
	}
}

/* ---- modes ------------------------------------------------------------------------- */
static int mode_conn(int64_t t_end)
{
	int64_t t_ready;
	long long all = 0, ready;

	setup_conns((size_t)count);
	connect_all(0, nconns, t_end);
	t_ready = ll_now_ns();
	printf("ready ok=%lld failed=%lld refused=%lld subfail=%lld timeouts=%lld "
	       "secs=%.3f start_ns=%" PRId64 " end_ns=%" PRId64 " wall_ms=%" PRId64 "\n",
	       n_ok, n_fail + (long long)nconns - next_open, n_refused, n_subfail, n_timeout,
	       (double)(t_last_ready - t_first_conn) / 1e9, t_first_conn, t_last_ready, wall_ms());
	fflush(stdout);
	ready = n_ok;
	while (!stop && ll_now_ns() < t_end) {
		long long live = 0;

		all = 0;
		for (size_t i = 0; i < nconns; i++) {
			if (conns[i].fd < 0 || conns[i].st != ST_READY)
				continue;
			live++;
			if (conns[i].got >= (uint32_t)expect)
				all++;
		}
		if (live == 0 || all == live)
			break;
		poll_once(100);
		housekeeping(ll_now_ns());
	}
	all = 0;
	for (size_t i = 0; i < nconns; i++) {
		if (conns[i].got >= (uint32_t)expect)
			all++;
		if (conns[i].got > (uint32_t)expect)
			msgs_extra += conns[i].got - (uint32_t)expect;
	}
	printf("recv conns_all=%lld of=%lld msgs=%lld extra=%lld closed=%lld "
	       "first_ns=%" PRId64 " last_ns=%" PRId64 " p50_ms=%.3f p99_ms=%.3f max_ms=%.3f "
	       "waited_s=%.1f\n",
	       all, ready, msgs_total, msgs_extra, n_closed, t_first_msg, t_last_msg,
	       ll_hist_q(&h_bcast, 0.5), ll_hist_q(&h_bcast, 0.99), h_bcast.max_us / 1000.0,
	       (double)(ll_now_ns() - t_ready) / 1e9);
	fflush(stdout);
	return all == (long long)nconns ? 0 : 1;
}

static void fan_publish(struct conn *pub, int ph, long long seq, int64_t t)
{
	char topic[64], payload[512];
	size_t n;

	snprintf(topic, sizeof(topic), "chat/%lld/%lld", pub->cr->chid, pub->cr->uid);
	n = chat_payload(payload, sizeof(payload), ph, seq, t);
	mqtt_publish(pub, topic, payload, n);
	fan_sent[ph]++;
}

static void print_phase(const char *name, int ph, double secs, const struct ll_hist *h)
{
	long long subs = (long long)nconns - 1;

	printf("%s sent=%lld deliveries=%lld expected=%lld secs=%.3f msgs_per_s=%.1f "
	       "deliveries_per_s=%.1f p50_ms=%.3f p99_ms=%.3f max_ms=%.3f over2s=%lld\n",
	       name, fan_sent[ph], fan_deliv[ph], fan_sent[ph] * subs, secs,
	       secs > 0 ? (double)fan_sent[ph] / secs : 0,
	       secs > 0 ? (double)fan_deliv[ph] / secs : 0, ll_hist_q(h, 0.5), ll_hist_q(h, 0.99),
	       h->max_us / 1000.0, h->over);
	fflush(stdout);
}

/* waits until every subscriber has what was sent in phase ph (or -G s, or
 * the deadline) */
static void drain(int ph, long long subs, int64_t t_end)
{
	int64_t until = ll_now_ns() + (int64_t)(drain_s * 1e9);

	if (until > t_end)
		until = t_end;

	while (!stop && ll_now_ns() < until && fan_deliv[ph] < fan_sent[ph] * subs) {
		poll_once(5);
		housekeeping(ll_now_ns());
	}
}

static int mode_fan(int64_t t_end)
{
	long long subs = count, seq = 0;
	struct conn *pub;
	int64_t t0, t, period = (int64_t)(1e9 / rate), t_rate_end, t_max_end;
	double rate_secs, max_secs;

	if ((size_t)pub_line >= ncreds)
		ll_die("-u beyond the credentials file");
	setup_conns((size_t)subs + 1);
	pub = &conns[subs];
	pub->role = 1;
	pub->cr = &creds[pub_line];
	connect_all(0, nconns, t_end);
	if (n_ok != (long long)nconns) {
		printf("fan connect_failed ok=%lld of=%zu refused=%lld subfail=%lld\n", n_ok,
		       nconns, n_refused, n_subfail);
		return 1;
	}
	/* warm-up at the target rate */
	phase = 0;
	t0 = ll_now_ns();
	for (long long k = 0; !stop && ll_now_ns() < t0 + (int64_t)(warm * 1e9);) {
		t = t0 + k * period;
		if (ll_now_ns() >= t) {
			fan_publish(pub, 0, seq++, t);
			k++;
			continue;
		}
		poll_ns(t - ll_now_ns());
	}
	drain(0, subs, t_end);
	/* open loop at the rate */
	phase = 1;
	t0 = ll_now_ns();
	t_rate_end = t0 + (int64_t)(dur * 1e9);
	for (long long k = 0; !stop && ll_now_ns() < t_end;) {
		t = t0 + k * period;
		if (t >= t_rate_end)
			break;
		if (ll_now_ns() >= t) {
			fan_publish(pub, 1, seq++, t);
			k++;
			continue;
		}
		poll_ns(t - ll_now_ns());
	}
	rate_secs = (double)(ll_now_ns() - t0) / 1e9;
	drain(1, subs, t_end);
	print_phase("rate", 1, rate_secs, &h_rate);
	if (window <= 0) {
		printf("total publishes=%lld deliveries=%lld\n", fan_sent[0] + fan_sent[1],
		       msgs_total);
		fflush(stdout);
		return 0;
	}
	/* closed loop: at most `window` messages not yet delivered to all */
	phase = 2;
	t0 = ll_now_ns();
	t_max_end = t0 + (int64_t)(dur * 1e9);
	while (!stop && (t = ll_now_ns()) < t_max_end && t < t_end) {
		if (fan_sent[2] - fan_deliv[2] / subs < window && !pub->out.len) {
			fan_publish(pub, 2, seq++, t);
			poll_ns(0);
		} else {
			poll_ns(1000000);
		}
	}
	max_secs = (double)(ll_now_ns() - t0) / 1e9;
	drain(2, subs, t_end);
	print_phase("max", 2, max_secs, &h_max);
	printf("total publishes=%lld deliveries=%lld\n", fan_sent[0] + fan_sent[1] + fan_sent[2],
	       msgs_total);
	fflush(stdout);
	return 0;
}

static int mode_pub(int64_t t_end)
{
	struct conn *c;
	long long *seen = calloc(ncreds, sizeof(*seen));
	size_t nseen = 0;
	char topic[64], payload[512];

	if (!seen)
		ll_die("out of memory");
	setup_conns(1);
	c = &conns[0];
	c->cr = &creds[(size_t)pub_line < ncreds ? (size_t)pub_line : 0];
	c->role = svc_user ? 2 : 1;
	connect_all(0, 1, t_end);
	if (n_ok != 1) {
		printf("pub connect_failed refused=%lld\n", n_refused);
		return 1;
	}
	for (size_t i = 0; i < ncreds; i++) {
		size_t j;
		size_t n;

		for (j = 0; j < nseen && seen[j] != creds[i].chid; j++)
			;
		if (j < nseen)
			continue;
		seen[nseen++] = creds[i].chid;
		/* a user publishes as itself; the service account as the line's user */
		snprintf(topic, sizeof(topic), "chat/%lld/%lld", creds[i].chid,
			 c->role == 2 ? creds[i].uid : c->cr->uid);
		n = chat_payload(payload, sizeof(payload), 9, (long long)i, ll_now_ns());
		mqtt_publish(c, topic, payload, n);
	}
	/* let it go out, then a clean DISCONNECT */
	{
		static const unsigned char disc[2] = {0xE0, 0};
		int64_t until = ll_now_ns() + 2000000000LL;

		while (c->fd >= 0 && c->out.len && ll_now_ns() < until)
			poll_once(10);
		ws_send(c, 2, disc, 2);
		until = ll_now_ns() + 200000000LL;
		while (c->fd >= 0 && ll_now_ns() < until)
			poll_once(10);
	}
	printf("pub channels=%zu\n", nseen);
	free(seen);
	return 0;
}

int main(int argc, char **argv)
{
	const char *mode;
	int o;
	int64_t t_end;

	ll_prog = "th-mqtt_load";
	if (argc < 2)
		ll_die("usage: th-mqtt_load conn|fan|pub [options] (see the source)");
	mode = argv[1];
	optind = 2;
	while ((o = getopt(argc, argv, "h:p:P:b:c:s:n:C:k:T:e:u:U:X:r:d:w:W:G:")) != -1) {
		switch (o) {
		case 'h':
			host = optarg;
			break;
		case 'p':
			port = atoi(optarg);
			break;
		case 'P':
			path = optarg;
			break;
		case 'b':
			src = optarg;
			break;
		case 'c':
			creds_file = optarg;
			break;
		case 's':
			start_idx = atoll(optarg);
			break;
		case 'n':
			count = atoll(optarg);
			break;
		case 'C':
			inflight_max = atoi(optarg);
			break;
		case 'k':
			keepalive = atoi(optarg);
			break;
		case 'T':
			deadline_s = atof(optarg);
			break;
		case 'e':
			expect = atoi(optarg);
			break;
		case 'u':
			pub_line = atoi(optarg);
			break;
		case 'U':
			svc_user = optarg;
			break;
		case 'X':
			svc_pass = optarg;
			break;
		case 'r':
			rate = atof(optarg);
			break;
		case 'd':
			dur = atof(optarg);
			break;
		case 'w':
			warm = atof(optarg);
			break;
		case 'W':
			window = atoi(optarg);
			break;
		case 'G':
			drain_s = atof(optarg);
			break;
		default:
			ll_die("bad option");
		}
	}
	if (!port || !creds_file || count < 1 || inflight_max < 1 || rate <= 0 || keepalive < 1 ||
	    keepalive > 65535 || deadline_s <= 0 || deadline_s > 3600 || drain_s < 0 ||
	    drain_s > 600)
		ll_die("bad options (need -p, -c; counts > 0; -T <= 3600; -G <= 600)");
	if (strcmp(host, "127.0.0.1") != 0 && strncmp(host, "127.", 4) != 0)
		ll_die("loopback only");
	rng ^= (uint64_t)ll_now_ns() ^ (uint64_t)getpid() << 32;
	creds = ll_creds_load(creds_file, &ncreds);
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0)
		ll_die("epoll_create1");
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	signal(SIGPIPE, SIG_IGN);
	t_end = ll_now_ns() + (int64_t)(deadline_s * 1e9);
	if (strcmp(mode, "conn") == 0)
		return mode_conn(t_end);
	if (strcmp(mode, "fan") == 0)
		return mode_fan(t_end);
	if (strcmp(mode, "pub") == 0)
		return mode_pub(t_end);
	ll_die("unknown mode");
	return 2;
}
