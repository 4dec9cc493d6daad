/* th-rt_hold: holds many authenticated MQTT subscribers for the
 * realtime-100k part of scripts/bench (one thread, epoll, non-blocking).
 * Loopback only (the addresses are the caller's: 127.0.0.0/8 by contract),
 * bounded in count (RT_MAX_CONNS a process, under the 20,000-descriptor cap)
 * and in time (-T), exits by itself.  Several run side by side, each from its
 * own source addresses; scripts/lib/bench-rt.sh starts and collects them.
 *
 * Connection i (indices -s .. -s+n-1) binds a source address of -b (round
 * robin), speaks MQTT 3.1.1 over WebSocket (subprotocol "mqtt", masked
 * binary frames) or, with -P -, over plain TCP, authenticates with
 * credentials line (i mod lines) as client id u<uid>-h<i>, and subscribes
 * to chat/<channel>/+ at QoS 0.  With -R a connection that is closed or
 * fails comes back after a jittered exponential backoff (0.5 s doubling to
 * 8 s, times 0.5..1.5), as townhall.js does.  With -I, every held
 * connection sends a PINGREQ every -I ms and times the PINGRESP (a broker
 * stall shows as a long round trip).
 *
 * Output (stdout, one line each, key=value):
 *   ready  once every connection's first attempt succeeded or failed:
 *          ok, failed, start_ns/end_ns (CLOCK_MONOTONIC, system-wide),
 *          rate (ready connections per second over that span);
 *   stat   every -i ms: held, opening, waiting (for a reconnect), drops
 *          (held connections that were closed), reconnects, failures by
 *          kind, msgs, bcast (broadcast messages received), bcast_last_ns,
 *          ping_max_ms (the longest ping round trip since the last stat);
 *   full   t_ns=.. each time held reaches n (again);
 *   drop   t_ns=.. the first time held falls below n after a "full";
 *   final  at the deadline or on SIGTERM/SIGINT: the totals, and for the
 *          broadcast messages (chat payloads whose body starts "bench 9
 *          <seq> <t_ns>", as th-mqtt_load pub sends them) the number of
 *          connections that got one, p50/p99/max of receipt - t_ns in ms and
 *          the last receipt time; for pings p50/p99/max in ms.
 * Failure kinds: connect (socket, bind or connect refused: ports, limits),
 * http (no 101), refused (CONNACK not 0), subfail (SUBACK 0x80), timeout (not
 * subscribed within -t s), reset (closed while handshaking).
 *
 * Usage: th-rt_hold -p port -c creds [-h 127.0.0.1] [-P /mqtt | -P -]
 *   [-b 127.0.0.2,127.0.0.3] [-s 0] [-n 1] [-C 256] [-k 600] [-t 30]
 *   [-T 600] [-i 1000] [-R] [-I 0] */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "loadlib.h"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

/* 2 descriptors spare per 1,000 and a few for stdio and epoll: under 20,000 */
#define RT_MAX_CONNS 19500
#define RT_MAX_SRC 64
#define RT_BACKOFF_MIN_NS 500000000LL
#define RT_BACKOFF_MAX_NS 8000000000LL
/* a server that sends more than this without a complete frame is broken */
#define RT_IN_MAX (1u << 20)
#define NS 1000000000LL
/* after a batch of events that was not full, wait this long before the next
 * epoll_wait (not when timing pings): see the main loop */
#define RT_BATCH_NS 1000000L

enum st { ST_IDLE, ST_TCP, ST_WS, ST_CONNACK, ST_SUBACK, ST_READY, ST_WAIT };
enum fail { F_CONNECT, F_HTTP, F_REFUSED, F_SUBFAIL, F_TIMEOUT, F_RESET, F_N };
static const char *const fail_name[F_N] = {"connect", "http",    "refused",
					   "subfail", "timeout", "reset"};

struct conn {
	int fd;
	enum st st;
	int want_out;   /* EPOLLOUT registered */
	int first_done; /* the first attempt succeeded or failed */
	int got_bcast;
	long long idx;
	const struct ll_cred *cr;
	struct ll_buf in, mq, out;
	int64_t t0;       /* start of the current attempt */
	int64_t retry_at; /* ST_WAIT: when to open again */
	int64_t backoff;
	int64_t last_tx, ping_sent;
};

static const char *host = "127.0.0.1", *path = "/mqtt", *creds_file;
static struct in_addr srcs[RT_MAX_SRC];
static int nsrc, port, keepalive = 600, inflight_max = 256, reconnect, raw_tcp;
static long long start_idx, count = 1;
static double deadline_s = 600, hs_timeout_s = 30;
static long stat_ms = 1000, ping_ms;

static struct ll_cred *creds;
static size_t ncreds;
static struct conn *conns;
static int ep;
static uint64_t rng = 0x9e3779b97f4a7c15ull;
static volatile sig_atomic_t stop;

static long long n_held, n_opening, n_waiting, n_drops, n_reconnects, n_fail[F_N];
static long long n_first_ok, n_first_fail, msgs, bcast_msgs, bcast_conns;
static long long next_first; /* the next connection's first attempt */
static int64_t t_first, t_first_end, bcast_last_ns, ping_max_ns;
static int was_full;
#define HMAX 10000000 /* 10 s in 1 us buckets */
static struct ll_hist h_bcast = {.lim_us = HMAX}, h_ping = {.lim_us = HMAX};

static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

/* ---- sending ---------------------------------------------------------------- */
static void conn_close(struct conn *c, int fail_kind);

static void flush_out(struct conn *c)
{
	while (c->out.len) {
		ssize_t w = send(c->fd, c->out.p, c->out.len, MSG_NOSIGNAL);

		if (w < 0) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			conn_close(c, F_RESET);
			return;
		}
		ll_buf_drop(&c->out, (size_t)w);
	}
	if ((c->out.len > 0) != c->want_out) {
		struct epoll_event ev = {.events = EPOLLIN | (c->out.len ? EPOLLOUT : 0u),
					 .data.ptr = c};

		c->want_out = c->out.len > 0;
		if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) < 0)
			ll_die("epoll_ctl");
	}
}

/* one MQTT packet: a masked binary frame, or as is over TCP */
static void send_mqtt(struct conn *c, const unsigned char *d, size_t n)
{
	unsigned char hdr[14], mask[4], tmp[1024];
	size_t h = 0;
	uint32_t m = (uint32_t)rnd();
	int pending = c->out.len > 0;

	if (!n || n > sizeof(tmp))
		ll_die("packet too big"); /* our own packets: a bug */
	if (raw_tcp) {
		ll_buf_add(&c->out, d, n);
	} else {
		hdr[h++] = 0x82;
		if (n < 126) {
			hdr[h++] = (unsigned char)(0x80 | n);
		} else {
			hdr[h++] = 0x80 | 126;
			hdr[h++] = (unsigned char)(n >> 8);
			hdr[h++] = (unsigned char)n;
		}
		memcpy(mask, &m, 4);
		memcpy(hdr + h, mask, 4);
		h += 4;
		for (size_t i = 0; i < n; i++)
			tmp[i] = d[i] ^ mask[i & 3];
		ll_buf_add(&c->out, hdr, h);
		ll_buf_add(&c->out, tmp, n);
	}
	c->last_tx = ll_now_ns();
	if (!pending)
		flush_out(c);
}

/* a pong (opcode 10) for a ping: the payload back, masked */
static void send_pong(struct conn *c, const unsigned char *d, size_t n)
{
	unsigned char f[6 + 125];
	uint32_t m = (uint32_t)rnd();

	if (n > 125)
		return; /* a control frame never carries more; ignore a broken one */
	f[0] = 0x8A;
	f[1] = (unsigned char)(0x80 | n);
	memcpy(f + 2, &m, 4);
	for (size_t i = 0; i < n; i++)
		f[6 + i] = d[i] ^ f[2 + (i & 3)];
	ll_buf_add(&c->out, f, 6 + n);
	flush_out(c);
}

static void ws_handshake(struct conn *c)
{
	static const char b64[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char req[512], k64[25];
	int n, j = 0;

	/* 16 random bytes in base64: 21 characters from the bits, then "A==" */
	for (int i = 0; i < 21; i++)
		k64[j++] = b64[rnd() & 63];
	memcpy(k64 + j, "A==", 4);
	n = snprintf(req, sizeof(req),
		     "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
		     "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
		     "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n",
		     path, host, port, k64);
	if (n < 0 || (size_t)n >= sizeof(req))
		ll_die("path too long");
	c->st = ST_WS;
	ll_buf_add(&c->out, req, (size_t)n);
	flush_out(c);
}

static void mqtt_connect(struct conn *c)
{
	char cid[64];
	unsigned char pk[1024];
	const char *pass = strcmp(c->cr->token, "-") ? c->cr->token : NULL;

	snprintf(cid, sizeof(cid), "u%lld-h%lld", c->cr->uid, c->idx);
	c->st = ST_CONNACK;
	send_mqtt(c, pk, ll_mqtt_connect(pk, sizeof(pk), cid, "bench", pass, (unsigned)keepalive));
}

/* ---- connection life ---------------------------------------------------------- */
static void schedule_retry(struct conn *c, int64_t now)
{
	double j = 0.5 + (double)(rnd() % 1000) / 1000.0;

	c->backoff = c->backoff ? c->backoff * 2 : RT_BACKOFF_MIN_NS;
	if (c->backoff > RT_BACKOFF_MAX_NS)
		c->backoff = RT_BACKOFF_MAX_NS;
	c->retry_at = now + (int64_t)((double)c->backoff * j);
	c->st = ST_WAIT;
	n_waiting++;
}

/* fail_kind: why a handshaking connection failed (F_N: a held one dropped) */
static void conn_close(struct conn *c, int fail_kind)
{
	int64_t now = ll_now_ns();

	if (c->fd < 0)
		return;
	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->fd = -1;
	ll_buf_free(&c->in);
	ll_buf_free(&c->mq);
	ll_buf_free(&c->out);
	if (c->st == ST_READY) {
		n_held--;
		n_drops++;
		c->backoff = 0;
	} else {
		n_opening--;
		n_fail[fail_kind < F_N ? fail_kind : F_RESET]++;
		if (!c->first_done) {
			c->first_done = 1;
			n_first_fail++;
		}
	}
	c->st = ST_IDLE;
	if (reconnect && !stop)
		schedule_retry(c, now);
}

static void conn_open(struct conn *c)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN, .data.ptr = c};
	int one = 1;

	c->t0 = ll_now_ns();
	if (!t_first)
		t_first = c->t0;
	c->st = ST_TCP;
	c->want_out = 1;
	c->got_bcast = 0;
	n_opening++;
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		/* conn_close needs a descriptor: count the failure here */
		n_opening--;
		n_fail[F_CONNECT]++;
		if (!c->first_done) {
			c->first_done = 1;
			n_first_fail++;
		}
		c->st = ST_IDLE;
		if (reconnect)
			schedule_retry(c, c->t0);
		return;
	}
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (nsrc) {
		struct sockaddr_in s = {.sin_family = AF_INET, .sin_addr = srcs[c->idx % nsrc]};

		/* the port is picked at connect, per destination: ~28k per pair */
		setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
		if (bind(c->fd, (struct sockaddr *)&s, sizeof(s)) < 0) {
			conn_close(c, F_CONNECT);
			return;
		}
	}
	if (inet_pton(AF_INET, host, &a.sin_addr) != 1)
		ll_die("bad -h address");
	if (connect(c->fd, (struct sockaddr *)&a, sizeof(a)) < 0 && errno != EINPROGRESS) {
		conn_close(c, F_CONNECT);
		return;
	}
	if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0)
		ll_die("epoll_ctl");
}

static void on_ready(struct conn *c)
{
	int64_t now = ll_now_ns();

	c->st = ST_READY;
	c->backoff = 0;
	n_opening--;
	n_held++;
	if (!c->first_done) {
		c->first_done = 1;
		n_first_ok++;
	} else {
		n_reconnects++;
	}
	if (n_first_ok + n_first_fail == count && !t_first_end)
		t_first_end = now;
}

/* a PUBLISH body (after the fixed header) */
static void on_publish(struct conn *c, const unsigned char *p, size_t n)
{
	size_t tl;
	const char *b;
	int ph;
	long long seq;
	int64_t t, now;

	msgs++;
	if (n < 2 || 2 + (tl = (size_t)p[0] << 8 | p[1]) > n)
		return;
	b = memmem(p + 2 + tl, n - 2 - tl, "\"body\":\"bench ", 14);
	if (!b || sscanf(b + 14, "%d %lld %" SCNd64, &ph, &seq, &t) != 3 || ph != 9)
		return;
	now = ll_now_ns();
	bcast_msgs++;
	if (!c->got_bcast) {
		c->got_bcast = 1;
		bcast_conns++;
	}
	bcast_last_ns = now;
	ll_hist_add(&h_bcast, now - t);
}

/* MQTT packets in c->mq */
static void mqtt_input(struct conn *c)
{
	size_t off = 0;

	while (c->fd >= 0 && c->mq.len - off >= 2) {
		const unsigned char *p = c->mq.p + off;
		size_t rl, k;
		int got = ll_mqtt_split(p, c->mq.len - off, &k, &rl);

		if (got < 0) {
			conn_close(c, F_RESET);
			return;
		}
		if (!got)
			break;
		switch (p[0] >> 4) {
		case 2: /* CONNACK */
			if (c->st != ST_CONNACK || rl < 2 || p[k + 1] != 0) {
				conn_close(c, F_REFUSED);
				return;
			} else {
				char topic[64];
				unsigned char pk[96];

				snprintf(topic, sizeof(topic), "chat/%lld/+", c->cr->chid);
				c->st = ST_SUBACK;
				send_mqtt(c, pk, ll_mqtt_subscribe(pk, sizeof(pk), topic, 0));
			}
			break;
		case 9: /* SUBACK */
			if (c->st != ST_SUBACK || rl < 3 || p[k + 2] == 0x80) {
				conn_close(c, F_SUBFAIL);
				return;
			}
			on_ready(c);
			break;
		case 3:
			on_publish(c, p + k, rl);
			break;
		case 13: /* PINGRESP */
			if (c->ping_sent) {
				int64_t d = ll_now_ns() - c->ping_sent;

				ll_hist_add(&h_ping, d);
				if (d > ping_max_ns)
					ping_max_ns = d;
				c->ping_sent = 0;
			}
			break;
		default:
			break;
		}
		off += k + rl;
	}
	if (c->fd >= 0 && off)
		ll_buf_drop(&c->mq, off);
}

/* server frames (unmasked) in c->in: payloads to c->mq */
static void ws_input(struct conn *c)
{
	size_t off = 0;

	while (c->fd >= 0 && c->in.len - off >= 2) {
		const unsigned char *p = c->in.p + off;
		size_t avail = c->in.len - off, h;
		uint64_t n;
		int op, masked;

		if (!ll_ws_frame(p, avail, &op, &masked, &h, &n))
			break;
		if (masked || n > RT_IN_MAX) { /* a masking server, a giant frame: broken */
			conn_close(c, F_RESET);
			return;
		}
		if (avail - h < n)
			break;
		if (op == 0 || op == 2)
			ll_buf_add(&c->mq, p + h, (size_t)n);
		else if (op == 8) {
			conn_close(c, F_RESET);
			return;
		} else if (op == 9)
			send_pong(c, p + h, (size_t)n);
		off += h + (size_t)n;
	}
	if (c->fd >= 0 && off)
		ll_buf_drop(&c->in, off);
	if (c->fd >= 0 && c->mq.len)
		mqtt_input(c);
}

static void on_readable(struct conn *c)
{
	unsigned char tmp[16384];

	for (;;) {
		ssize_t r = recv(c->fd, tmp, sizeof(tmp), 0);

		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			break;
		if (r <= 0) {
			conn_close(c, F_RESET);
			return;
		}
		ll_buf_add(raw_tcp ? &c->mq : &c->in, tmp, (size_t)r);
		if ((size_t)r < sizeof(tmp))
			break;
	}
	if (c->in.len > RT_IN_MAX || c->mq.len > RT_IN_MAX) {
		conn_close(c, F_RESET);
		return;
	}
	if (raw_tcp) {
		mqtt_input(c);
		return;
	}
	if (c->st == ST_WS) {
		unsigned char *e = memmem(c->in.p, c->in.len, "\r\n\r\n", 4);

		if (!e)
			return;
		if (c->in.len < 12 || memcmp(c->in.p + 9, "101", 3) != 0) {
			conn_close(c, F_HTTP);
			return;
		}
		ll_buf_drop(&c->in, (size_t)(e - c->in.p) + 4);
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
			conn_close(c, F_CONNECT);
			return;
		}
		if (raw_tcp)
			mqtt_connect(c);
		else
			ws_handshake(c);
		return;
	}
	if (evs & (EPOLLIN | EPOLLHUP | EPOLLERR))
		on_readable(c);
	if (c->fd >= 0 && (evs & EPOLLOUT))
		flush_out(c);
}

/* ---- the loop ----------------------------------------------------------------- */
static void print_stat(int64_t now)
{
	printf("stat t_ns=%" PRId64
	       " held=%lld opening=%lld waiting=%lld drops=%lld reconnects=%lld",
	       now, n_held, n_opening, n_waiting, n_drops, n_reconnects);
	for (int k = 0; k < F_N; k++)
		printf(" %s=%lld", fail_name[k], n_fail[k]);
	printf(" msgs=%lld bcast=%lld bcast_last_ns=%" PRId64 " ping_max_ms=%.3f\n", msgs,
	       bcast_msgs, bcast_last_ns, (double)ping_max_ns / 1e6);
	ping_max_ns = 0;
	fflush(stdout);
}

/* first attempts, in index order, as handshakes in flight allow (cheap: called
 * after every wake-up) */
static void open_first(void)
{
	while (next_first < count && n_opening < inflight_max && !stop)
		conn_open(&conns[next_first++]);
}

/* how often sweep() runs: 10 ms while retries wait (their backoff is the
 * client's, not ours) or pings are timed, 100 ms while handshakes are open,
 * else once a second (keepalive pings, minutes apart).  A pass over 16,667
 * connections ten times a second was 15 % of the holders' samples in a
 * broadcast, on the cores the servers under test share. */
static int64_t sweep_period(void)
{
	return ping_ms || n_waiting ? 10000000LL : n_opening ? 100000000LL : NS;
}

/* a pass over every connection: retries that are due, handshake timeouts,
 * keepalive and timing pings */
static void sweep(int64_t now)
{
	static const unsigned char pingreq[2] = {0xC0, 0};
	int64_t hs_ns = (int64_t)(hs_timeout_s * (double)NS);

	for (long long i = 0; i < next_first; i++) {
		struct conn *c = &conns[i];

		if (c->st == ST_WAIT && now >= c->retry_at && n_opening < inflight_max && !stop) {
			n_waiting--;
			c->st = ST_IDLE;
			conn_open(c);
		} else if (c->fd >= 0 && c->st != ST_READY && now - c->t0 > hs_ns) {
			conn_close(c, F_TIMEOUT);
		} else if (c->st == ST_READY && !c->ping_sent &&
			   ((ping_ms > 0 && now - c->last_tx >= ping_ms * 1000000LL) ||
			    now - c->last_tx > (int64_t)keepalive * NS / 2)) {
			if (ping_ms > 0)
				c->ping_sent = now;
			send_mqtt(c, pingreq, 2);
		}
	}
}

static void parse_srcs(char *list)
{
	for (char *sv = NULL, *t = strtok_r(list, ",", &sv); t; t = strtok_r(NULL, ",", &sv)) {
		if (nsrc == RT_MAX_SRC)
			ll_die("too many -b addresses");
		if (inet_pton(AF_INET, t, &srcs[nsrc]) != 1)
			ll_die("bad -b address");
		nsrc++;
	}
}

static void usage(void)
{
	fprintf(stderr, "usage: th-rt_hold -p port -c creds [-h host] [-P path|-] [-b src,...] "
			"[-s start] [-n count] [-C inflight] [-k keepalive] [-t handshake_s] "
			"[-T deadline_s] [-i stat_ms] [-R] [-I ping_ms]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct rlimit rl;
	struct sigaction sa = {.sa_handler = on_signal};
	int opt;
	int64_t t_end, next_stat, last_sweep, now;

	ll_prog = "th-rt_hold";
	while ((opt = getopt(argc, argv, "h:p:P:b:c:s:n:C:k:t:T:i:RI:")) != -1) {
		switch (opt) {
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
			parse_srcs(optarg);
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
		case 't':
			hs_timeout_s = atof(optarg);
			break;
		case 'T':
			deadline_s = atof(optarg);
			break;
		case 'i':
			stat_ms = atol(optarg);
			break;
		case 'R':
			reconnect = 1;
			break;
		case 'I':
			ping_ms = atol(optarg);
			break;
		default:
			usage();
		}
	}
	if (port <= 0 || port > 65535 || !creds_file || count < 1 || count > RT_MAX_CONNS ||
	    start_idx < 0 || inflight_max < 1 || keepalive < 10 || keepalive > 65535 ||
	    hs_timeout_s <= 0 || deadline_s <= 0 || deadline_s > 3600 || stat_ms < 100 ||
	    ping_ms < 0 || optind != argc)
		usage();
	raw_tcp = strcmp(path, "-") == 0;
	creds = ll_creds_load(creds_file, &ncreds);
	/* the soft open-files limit up to the hard one: count + a few must fit */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)count + 16)
		ll_die("open-files limit below -n + 16");
	conns = calloc((size_t)count, sizeof(*conns));
	if (!conns)
		ll_die("out of memory");
	for (long long i = 0; i < count; i++) {
		conns[i].fd = -1;
		conns[i].idx = start_idx + i;
		conns[i].cr = &creds[(size_t)(start_idx + i) % ncreds];
	}
	rng ^= (uint64_t)getpid() << 32 ^ (uint64_t)ll_now_ns();
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0)
		ll_die("epoll_create1");

	now = ll_now_ns();
	t_end = now + (int64_t)(deadline_s * (double)NS);
	next_stat = now + stat_ms * 1000000LL;
	last_sweep = now - NS;
	while (!stop && now < t_end) {
		struct epoll_event evs[512];
		int64_t due;
		int n, wait_ms;

		open_first();
		if (now - last_sweep >= sweep_period()) {
			sweep(now);
			last_sweep = now;
		}
		if (t_first_end && t_first_end != -1) {
			printf("ready ok=%lld failed=%lld start_ns=%" PRId64 " end_ns=%" PRId64
			       " rate=%.0f\n",
			       n_first_ok, n_first_fail, t_first, t_first_end,
			       t_first_end > t_first
				       ? (double)n_first_ok * 1e9 / (double)(t_first_end - t_first)
				       : 0.0);
			fflush(stdout);
			t_first_end = -1;
		}
		if (n_held == count && !was_full) {
			was_full = 1;
			printf("full t_ns=%" PRId64 "\n", now);
			fflush(stdout);
		} else if (n_held < count && was_full) {
			was_full = 0;
			printf("drop t_ns=%" PRId64 " held=%lld\n", now, n_held);
			fflush(stdout);
		}
		if (now >= next_stat) {
			print_stat(now);
			next_stat += stat_ms * 1000000LL;
		}
		/* until the next sweep or stat line, whichever comes first */
		due = last_sweep + sweep_period();
		if (next_stat < due)
			due = next_stat;
		wait_ms = (int)((due - now) / 1000000LL);
		n = epoll_wait(ep, evs, 512, wait_ms < 0 ? 0 : wait_ms);
		if (n < 0 && errno != EINTR)
			ll_die("epoll_wait");
		for (int i = 0; i < n; i++)
			on_event(evs[i].data.ptr, evs[i].events);
		/* Let the next deliveries gather.  Woken for each of them, the
		 * holders spent most of their time being switched in and out (a
		 * broadcast's profile: 58 % of their samples), on the two cores
		 * the servers under test use; a receipt is late by 1 ms at most. */
		if (n > 0 && n < 512 && !ping_ms) {
			struct timespec ts = {0, RT_BATCH_NS};

			nanosleep(&ts, NULL);
		}
		now = ll_now_ns();
	}
	print_stat(now);
	printf("final held=%lld drops=%lld reconnects=%lld first_ok=%lld first_failed=%lld", n_held,
	       n_drops, n_reconnects, n_first_ok, n_first_fail);
	for (int k = 0; k < F_N; k++)
		printf(" %s=%lld", fail_name[k], n_fail[k]);
	printf(" msgs=%lld bcast=%lld bcast_conns=%lld bcast_p50_ms=%.3f bcast_p99_ms=%.3f "
	       "bcast_max_ms=%.3f bcast_last_ns=%" PRId64 " pings=%lld ping_p50_ms=%.3f "
	       "ping_p99_ms=%.3f ping_max_ms=%.3f\n",
	       msgs, bcast_msgs, bcast_conns, ll_hist_q(&h_bcast, 0.5), ll_hist_q(&h_bcast, 0.99),
	       (double)h_bcast.max_us / 1e3, bcast_last_ns, h_ping.n, ll_hist_q(&h_ping, 0.5),
	       ll_hist_q(&h_ping, 0.99), (double)h_ping.max_us / 1e3);
	fflush(stdout);
	for (long long i = 0; i < count; i++) {
		if (conns[i].fd >= 0)
			close(conns[i].fd);
		ll_buf_free(&conns[i].in);
		ll_buf_free(&conns[i].mq);
		ll_buf_free(&conns[i].out);
	}
	free(conns);
	for (size_t i = 0; i < ncreds; i++)
		free(creds[i].token);
	free(creds);
	close(ep);
	return 0;
}
