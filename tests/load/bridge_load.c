/* th-bridge_load: MQTT 3.1.1 over plain TCP load generator for the bridge
 * part of scripts/bench (one thread, epoll).  Loopback only, bounded in time,
 * exits by itself.
 *
 * Publishers: one connection per line of the credentials file (lines
 * "uid channel_id token"; client id u<uid>-bl<i>, the token as password),
 * each publishing QoS 1 chat messages {"id": uuid, "body": "..."} to
 * chat/<channel>/<uid>.  The uuid carries a run nonce and the message's
 * sequence number, so whatever comes back names the message exactly.
 *
 * Sink (-S):
 *   receipts  a service-account connection (-U/-X) subscribed to
 *             user/+/inbox at QoS 1: a message is "visible" when a
 *             {"type":"stored","ids":[...]} receipt (sent by the bridge right
 *             after its commit) names it.  The bridge's /metrics/bridge is
 *             read once a second over HTTP (-M port) for
 *             th_messages_persisted_total and th_lag_ms.
 *   sub       a service-account connection subscribed to chat/+/+ at QoS 1
 *             (the broker's own publish -> subscriber delivery, no bridge).
 *
 * Phases: for each rate of -r (msg/s, comma separated), -d s of open-loop
 * publishing (the send time is the scheduled time), then up to -g s for the
 * sink to catch up (it ends as soon as every message sent so far is done);
 * then, if -W > 0, -d s as fast as a window of -W messages not yet done
 * allows.  Prints "sample ..." once a second, one "step ..." line per rate
 * and "max ..." for the window phase: counts, rates, backlog and
 * publish -> done latency p50/p99/max (ms) over every message of the step.
 *
 * Options: -h host (127.0.0.1) -p MQTT port -c credentials -U user -X
 *   password (service account) -S sink -M metrics HTTP port (0: none)
 *   -r rates -d seconds -g catch-up s (20) -W window -T deadline s (600)
 *   -b body bytes (100) -s the sink's MQTT port (-p): with the publishers on
 *   one edge of the real-time tier and the sink on another, every message
 *   counted crossed the hub.
 * th-bridge_load -K client_id -p port -U user -X password: connects once with
 * a clean session under client_id, which discards that client's persistent
 * session, and disconnects. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
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

struct conn {
	int fd, ready, sink, want_out;
	long long uid, chid;
	const char *token;
	struct ll_buf in, out;
	uint16_t pid;
};

#define MAX_STEPS 16
#define HMAX 5000000 /* 1 us buckets up to 5 s */

struct phase {
	double rate;                             /* 0: window phase */
	long long seq0, seq1;                    /* message range [seq0, seq1) */
	int64_t t0, t1, t_caught;                /* send start/end, all done (0: never) */
	long long pers0, pers1, pers_mid, persc; /* metric at start, end, mid, caught-up */
	long long done0, done_end, done_mid, sent_mid;
	long long lag_max, lag_end, b0, bm0, b1, bm1;
	struct ll_hist h;
};

static const char *kill_cid;
static const char *host = "127.0.0.1", *creds_file, *svc_user, *svc_pass, *sink_kind = "receipts";
static int port, sink_port, mport, window;
static double dur = 10, gap = 20, deadline_s = 600;
static int body_len = 100;
static double rates[MAX_STEPS];
static int nrates;

static struct conn *conns;
static int npub, ep;
static struct conn sinkc;
static uint32_t nonce;
static int64_t *sent_ns;
static unsigned char *done_map;
static long long seq_cap, seq_next, n_done, n_dup_done, n_acked, n_sink_msgs;
static struct phase ph[MAX_STEPS + 1];
static int nph, cur = -1;
static long long last_pers = -1, last_lag = -1, pers_base = -1, last_batches, last_bmsgs;
static volatile sig_atomic_t stop;

/* queues one encoded packet; 0 (did not fit) is a bug in the caller's sizes */
static void queue(struct conn *c, const unsigned char *pk, size_t n)
{
	if (!n)
		ll_die("packet too big");
	ll_buf_add(&c->out, pk, n);
}

static void send_connect(struct conn *c, const char *cid, const char *user, const char *pass)
{
	unsigned char b[8192];
	size_t n = ll_mqtt_connect(b, sizeof(b), cid, user, pass,
				   0); /* keepalive off: the run is bounded */

	if (!n)
		ll_die("password too long");
	queue(c, b, n);
}

static void send_subscribe(struct conn *c, const char *filter)
{
	unsigned char b[256];

	queue(c, b, ll_mqtt_subscribe(b, sizeof(b), filter, 1));
}

static void send_puback(struct conn *c, unsigned pid)
{
	unsigned char b[4];

	queue(c, b, ll_mqtt_puback(b, pid));
}

static void fmt_id(char *out, long long seq)
{
	snprintf(out, 37, "%08x-b0a0-4000-8000-%012llx", nonce, (unsigned long long)seq);
}

static void publish_one(struct conn *c)
{
	unsigned char b[1024];
	char topic[64], id[37], body[600];
	long long seq = seq_next++;
	int bl;

	if (seq >= seq_cap)
		ll_die("sequence space exhausted (raise rates x seconds less)");
	fmt_id(id, seq);
	bl = snprintf(body, sizeof(body), "{\"id\":\"%s\",\"body\":\"bench %lld ", id, seq);
	while (bl < body_len + 30 && bl < (int)sizeof(body) - 4)
		body[bl++] = 'x';
	bl += snprintf(body + bl, sizeof(body) - (size_t)bl, "\"}");
	snprintf(topic, sizeof(topic), "chat/%lld/%lld", c->chid, c->uid);
	if (++c->pid == 0)
		c->pid = 1;
	sent_ns[seq] = ll_now_ns();
	queue(c, b, ll_mqtt_publish(b, sizeof(b), topic, 1, c->pid, body, (size_t)bl));
}

/* ---- done: receipt or delivery ------------------------------------------ */
static int phase_of(long long seq)
{
	for (int i = cur < nph ? cur : nph - 1; i >= 0; i--)
		if (seq >= ph[i].seq0)
			return i;
	return -1;
}

static void mark_done(long long seq, int64_t t)
{
	int p;

	if (seq < 0 || seq >= seq_next)
		return;
	if (done_map[seq]) {
		n_dup_done++;
		return;
	}
	done_map[seq] = 1;
	n_done++;
	p = phase_of(seq);
	if (p >= 0)
		ll_hist_add(&ph[p].h, t - sent_ns[seq]);
}

static long long id_seq(const char *s)
{
	char pre[9];
	unsigned long long v;

	snprintf(pre, sizeof(pre), "%08x", nonce);
	if (strncmp(s, pre, 8) != 0 || s[8] != '-')
		return -1;
	if (sscanf(s + 24, "%12llx", &v) != 1)
		return -1;
	return (long long)v;
}

static void on_sink_publish(const unsigned char *topic, size_t tl, const unsigned char *pl,
			    size_t n)
{
	int64_t t = ll_now_ns();
	const char *p, *end = (const char *)pl + n;

	(void)topic;
	(void)tl;
	n_sink_msgs++;
	if (strcmp(sink_kind, "sub") == 0) {
		/* {"id":"<36>", ... */
		p = memmem(pl, n, "\"id\":\"", 6);
		if (p && p + 6 + 36 <= end)
			mark_done(id_seq(p + 6), t);
		return;
	}
	if (!memmem(pl, n, "\"stored\"", 8))
		return;
	p = memmem(pl, n, "\"ids\"", 5);
	while (p && p < end) {
		const char *q = memchr(p, '"', (size_t)(end - p));

		if (!q || q + 38 > end)
			break;
		if (q[37] == '"' && q[9] == '-') {
			mark_done(id_seq(q + 1), t);
			p = q + 38;
		} else {
			p = q + 1;
		}
	}
}

/* ---- connections -------------------------------------------------------- */
static void want_out(struct conn *c, int on)
{
	struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c};

	if (c->want_out == on)
		return;
	c->want_out = on;
	epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void flush(struct conn *c)
{
	while (c->out.len) {
		ssize_t w = send(c->fd, c->out.p, c->out.len, MSG_NOSIGNAL);

		if (w < 0) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			ll_die("send");
		}
		ll_buf_drop(&c->out, (size_t)w);
	}
	want_out(c, c->out.len > 0);
}

static void open_conn(struct conn *c, int to)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)to)};
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
	int one = 1;

	inet_pton(AF_INET, host, &a.sin_addr);
	c->fd = socket(AF_INET, SOCK_STREAM, 0);
	if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&a, sizeof(a)) < 0)
		ll_die("connect");
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0)
		ll_die("epoll_ctl");
	/* nonblocking after the (loopback, immediate) connect */
	if (fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK) < 0)
		ll_die("fcntl");
}

static void handle(struct conn *c)
{
	unsigned char tmp[65536];

	for (;;) {
		ssize_t r = recv(c->fd, tmp, sizeof(tmp), 0);

		if (r == 0) {
			fprintf(stderr, "th-bridge_load: the broker closed a %s connection\n",
				c->sink ? "sink" : "publisher");
			exit(3);
		}
		if (r < 0) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			ll_die("recv");
		}
		ll_buf_add(&c->in, tmp, (size_t)r);
	}
	for (;;) {
		size_t k, rl;
		unsigned char t;
		const unsigned char *p;
		int got = ll_mqtt_split(c->in.p, c->in.len, &k, &rl);

		if (got < 0)
			ll_die("bad remaining length");
		if (!got)
			break;
		t = c->in.p[0];
		p = c->in.p + k;
		switch (t >> 4) {
		case 2: /* CONNACK */
			if (rl < 2 || p[1] != 0) {
				fprintf(stderr, "th-bridge_load: CONNACK refused (%d)\n",
					rl >= 2 ? p[1] : -1);
				exit(3);
			}
			if (c->sink)
				send_subscribe(c, strcmp(sink_kind, "sub") == 0 ? "chat/+/+"
										: "user/+/inbox");
			else
				c->ready = 1;
			break;
		case 9: /* SUBACK */
			if (rl < 3 || p[2] == 0x80)
				ll_die("SUBACK refused");
			c->ready = 1;
			break;
		case 4: /* PUBACK */
			n_acked++;
			break;
		case 3: { /* PUBLISH */
			size_t tl = ((size_t)p[0] << 8) | p[1], off = 2 + tl;
			unsigned qos = (t >> 1) & 3, pid = 0;

			if (qos) {
				pid = ((unsigned)p[off] << 8) | p[off + 1];
				off += 2;
			}
			if (c->sink)
				on_sink_publish(p + 2, tl, p + off, rl - off);
			if (qos == 1)
				send_puback(c, pid);
			break;
		}
		default:
			break;
		}
		ll_buf_drop(&c->in, k + rl);
	}
	flush(c);
}

/* ---- /metrics/bridge ----------------------------------------------------- */
static long long metric_in(const char *text, const char *name)
{
	size_t n = strlen(name);
	const char *p = text;
	long long sum = -1;

	while ((p = strstr(p, name))) {
		if ((p == text || p[-1] == '\n') && (p[n] == ' ' || p[n] == '{')) {
			const char *v = strchr(p, ' ');

			if (v) {
				if (sum < 0)
					sum = 0;
				sum += strtoll(v + 1, NULL, 10);
			}
		}
		p += n;
	}
	return sum;
}

static void read_metrics(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)mport)};
	char req[128], resp[65536];
	size_t got = 0;
	int fd;
	struct pollfd pf;

	if (!mport)
		return;
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return;
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(fd);
		return;
	}
	snprintf(req, sizeof(req), "GET /metrics/bridge HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
	if (send(fd, req, strlen(req), MSG_NOSIGNAL) < 0) {
		close(fd);
		return;
	}
	pf.fd = fd;
	pf.events = POLLIN;
	while (got < sizeof(resp) - 1 && poll(&pf, 1, 2000) > 0) {
		ssize_t r = recv(fd, resp + got, sizeof(resp) - 1 - got, 0);

		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	resp[got] = '\0';
	{
		long long v = metric_in(resp, "th_messages_persisted_total");
		long long l = metric_in(resp, "th_lag_ms");

		if (v >= 0) {
			last_pers = v;
			if (pers_base < 0)
				pers_base = v;
		}
		if (l >= 0)
			last_lag = l;
		if ((l = metric_in(resp, "th_batches_total")) >= 0)
			last_batches = l;
		if ((l = metric_in(resp, "th_batch_messages_total")) >= 0)
			last_bmsgs = l;
	}
}

static long long pers_now(void)
{
	return mport ? (last_pers >= 0 ? last_pers - pers_base : 0) : n_done;
}

/* ---- main loop ------------------------------------------------------------ */
static void pump(int ms)
{
	struct epoll_event evs[64];
	int n = epoll_wait(ep, evs, 64, ms);

	for (int i = 0; i < n; i++) {
		struct conn *c = evs[i].data.ptr;

		if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
			handle(c);
		if (evs[i].events & EPOLLOUT)
			flush(c);
	}
}

static void sample(int64_t t_start, const char *what)
{
	read_metrics();
	printf("sample t=%.3f phase=%s sent=%lld acked=%lld done=%lld persisted=%lld lag_ms=%lld\n",
	       (double)(ll_now_ns() - t_start) / 1e9, what, seq_next, n_acked, n_done, pers_now(),
	       last_lag);
	fflush(stdout);
}

static void on_alarm(int s)
{
	(void)s;
	stop = 1;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: th-bridge_load -p port [-s sink_port] -c creds -U user -X pass [-S "
		"receipts|sub] "
		"[-M metrics_port] -r r1,r2,... [-d s] [-g s] [-W window] [-T s] [-b bytes]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct ll_cred *cr;
	size_t ncr;
	char cid[64];
	int o, i;
	int64_t t_run, t_next_sample;
	long long total = 0;

	ll_prog = "th-bridge_load";
	while ((o = getopt(argc, argv, "h:p:s:c:U:X:S:M:r:d:g:W:T:b:K:")) != -1) {
		switch (o) {
		case 'h':
			host = optarg;
			break;
		case 'p':
			port = atoi(optarg);
			break;
		case 's':
			sink_port = atoi(optarg);
			break;
		case 'c':
			creds_file = optarg;
			break;
		case 'U':
			svc_user = optarg;
			break;
		case 'X':
			svc_pass = optarg;
			break;
		case 'S':
			sink_kind = optarg;
			break;
		case 'M':
			mport = atoi(optarg);
			break;
		case 'r': {
			char *s = optarg, *tok;

			while ((tok = strsep(&s, ",")) && nrates < MAX_STEPS)
				if (*tok)
					rates[nrates++] = atof(tok);
			break;
		}
		case 'd':
			dur = atof(optarg);
			break;
		case 'g':
			gap = atof(optarg);
			break;
		case 'W':
			window = atoi(optarg);
			break;
		case 'T':
			deadline_s = atof(optarg);
			break;
		case 'b':
			body_len = atoi(optarg);
			break;
		case 'K':
			kill_cid = optarg;
			break;
		default:
			usage();
		}
	}
	if (kill_cid && port && svc_user && svc_pass) {
		/* a clean-session CONNECT under a persistent session's client id
		 * discards that session (and its subscriptions); DISCONNECT ends ours */
		unsigned char ack[4];
		struct conn k = {0};
		ssize_t r;

		if ((ep = epoll_create1(0)) < 0)
			ll_die("epoll_create1");
		open_conn(&k, port);
		send_connect(&k, kill_cid, svc_user, svc_pass);
		fcntl(k.fd, F_SETFL, fcntl(k.fd, F_GETFL) & ~O_NONBLOCK);
		if (send(k.fd, k.out.p, k.out.len, MSG_NOSIGNAL) < 0 ||
		    (r = recv(k.fd, ack, sizeof(ack), MSG_WAITALL)) != 4 || ack[0] != 0x20 ||
		    ack[3] != 0) {
			fprintf(stderr, "th-bridge_load: no CONNACK for %s\n", kill_cid);
			return 3;
		}
		send(k.fd, "\xe0\x00", 2, MSG_NOSIGNAL);
		close(k.fd);
		printf("session %s discarded\n", kill_cid);
		return 0;
	}
	if (!port || !creds_file || !svc_user || !svc_pass || (!nrates && !window) ||
	    (strcmp(sink_kind, "receipts") && strcmp(sink_kind, "sub")) || body_len < 1 ||
	    body_len > 500)
		usage();
	signal(SIGALRM, on_alarm);
	signal(SIGTERM, on_alarm);
	signal(SIGINT, on_alarm);
	signal(SIGPIPE, SIG_IGN);
	alarm((unsigned)deadline_s);
	nonce = (uint32_t)(ll_now_ns() ^ ((int64_t)getpid() << 20));

	/* credentials: one publisher per line */
	cr = ll_creds_load(creds_file, &ncr);
	npub = (int)ncr;
	if (!(conns = calloc(ncr, sizeof(*conns))))
		ll_die("out of memory");
	for (i = 0; i < npub; i++) {
		conns[i].uid = cr[i].uid;
		conns[i].chid = cr[i].chid;
		conns[i].token = cr[i].token;
	}

	for (i = 0; i < nrates; i++)
		total += (long long)(rates[i] * dur * 1.05) + 1000;
	if (window)
		total += 400000LL * (long long)dur;
	seq_cap = total;
	sent_ns = calloc((size_t)seq_cap, sizeof(*sent_ns));
	done_map = calloc((size_t)seq_cap, 1);
	if (!sent_ns || !done_map)
		ll_die("out of memory");

	if ((ep = epoll_create1(0)) < 0)
		ll_die("epoll_create1");
	sinkc.sink = 1;
	open_conn(&sinkc, sink_port ? sink_port : port);
	snprintf(cid, sizeof(cid), "th-bench-sink-%d", (int)getpid());
	send_connect(&sinkc, cid, svc_user, svc_pass);
	flush(&sinkc);
	for (i = 0; i < npub; i++) {
		open_conn(&conns[i], port);
		snprintf(cid, sizeof(cid), "u%lld-bl%d", conns[i].uid, i);
		send_connect(&conns[i], cid, "bench", conns[i].token);
		flush(&conns[i]);
	}
	for (int64_t t0 = ll_now_ns(); !stop;) {
		int all = sinkc.ready;

		for (i = 0; i < npub; i++)
			all &= conns[i].ready;
		if (all)
			break;
		if (ll_now_ns() - t0 > 10000000000LL)
			ll_die("connections not ready after 10 s");
		pump(10);
	}
	printf("ready publishers=%d sink=%s nonce=%08x\n", npub, sink_kind, nonce);
	fflush(stdout);

	t_run = ll_now_ns();
	read_metrics();
	t_next_sample = t_run;
	nph = nrates + (window ? 1 : 0);
	for (cur = 0; cur < nph && !stop; cur++) {
		struct phase *P = &ph[cur];
		int64_t t, end, mid_t;
		int rr = 0, mid_done = 0;
		char what[32];

		P->rate = cur < nrates ? rates[cur] : 0;
		P->h.lim_us = HMAX;
		snprintf(what, sizeof(what), P->rate > 0 ? "rate%.0f" : "window", P->rate);
		P->seq0 = seq_next;
		read_metrics();
		P->pers0 = pers_now();
		P->b0 = last_batches;
		P->bm0 = last_bmsgs;
		P->done0 = n_done;
		P->t0 = ll_now_ns();
		end = P->t0 + (int64_t)(dur * 1e9);
		mid_t = P->t0 + (int64_t)(dur * 0.5e9);
		while (!stop && (t = ll_now_ns()) < end) {
			long long due;

			if (P->rate > 0)
				due = P->seq0 + (long long)((double)(t - P->t0) * P->rate / 1e9) -
				      seq_next;
			else
				due = window - (seq_next - n_done);
			if (due > 2000)
				due = 2000; /* per tick; a late tick catches up over the next ones */
			for (; due > 0; due--) {
				publish_one(&conns[rr]);
				rr = (rr + 1) % npub;
			}
			for (i = 0; i < npub; i++)
				if (conns[i].out.len)
					flush(&conns[i]);
			pump(1);
			if (!mid_done && t >= mid_t) {
				read_metrics();
				P->pers_mid = pers_now();
				P->done_mid = n_done;
				P->sent_mid = seq_next;
				mid_done = 1;
			}
			if (t >= t_next_sample) {
				sample(t_run, what);
				if (last_lag > P->lag_max)
					P->lag_max = last_lag;
				t_next_sample = t + 1000000000;
			}
		}
		P->t1 = ll_now_ns();
		P->seq1 = seq_next;
		read_metrics();
		P->pers1 = pers_now();
		P->b1 = last_batches;
		P->bm1 = last_bmsgs;
		P->done_end = n_done;
		P->lag_end = last_lag;
		if (last_lag > P->lag_max)
			P->lag_max = last_lag;
		/* catch-up: until every message so far is done, at most gap s */
		end = P->t1 + (int64_t)(gap * 1e9);
		while (!stop && (t = ll_now_ns()) < end) {
			pump(5);
			if (n_done >= seq_next) {
				P->t_caught = ll_now_ns();
				break;
			}
			if (t >= t_next_sample) {
				sample(t_run, "catchup");
				t_next_sample = t + 1000000000;
			}
		}
		read_metrics();
		P->persc = pers_now();
		{
			double secs = (double)(P->t1 - P->t0) / 1e9;
			long long sent = P->seq1 - P->seq0;
			long long pers = P->pers1 - P->pers0;

			printf("%s rate=%.0f secs=%.2f sent=%lld send_rate=%.0f acked_total=%lld "
			       "persisted=%lld persisted_rate=%.0f backlog_mid=%lld "
			       "backlog_end=%lld "
			       "done=%lld done_rate=%.0f lag_ms_max=%lld lag_ms_end=%lld "
			       "catchup_ms=%.0f "
			       "p50_ms=%.3f p99_ms=%.3f max_ms=%.3f late=%lld persisted_after=%lld "
			       "batches=%lld "
			       "avg_batch=%.0f\n",
			       P->rate > 0 ? "step" : "max", P->rate, secs, sent,
			       (double)sent / secs, n_acked, pers, (double)pers / secs,
			       (P->sent_mid - P->seq0) - (P->pers_mid - P->pers0), sent - pers,
			       P->done_end - P->done0, (double)(P->done_end - P->done0) / secs,
			       P->lag_max, P->lag_end,
			       P->t_caught ? (double)(P->t_caught - P->t1) / 1e6 : -1.0,
			       ll_hist_q(&P->h, 0.5), ll_hist_q(&P->h, 0.99),
			       (double)P->h.max_us / 1000.0, P->h.over, P->persc - P->pers0,
			       P->b1 - P->b0,
			       P->b1 > P->b0 ? (double)(P->bm1 - P->bm0) / (double)(P->b1 - P->b0)
					     : 0.0);
			fflush(stdout);
		}
	}
	/* final: whatever is still outstanding */
	for (int64_t end = ll_now_ns() + 2000000000;
	     !stop && n_done < seq_next && ll_now_ns() < end;)
		pump(5);
	read_metrics();
	printf("total sent=%lld acked=%lld done=%lld dup_done=%lld sink_msgs=%lld persisted=%lld "
	       "nonce=%08x\n",
	       seq_next, n_acked, n_done, n_dup_done, n_sink_msgs, pers_now(), nonce);
	return stop ? 4 : 0;
}
