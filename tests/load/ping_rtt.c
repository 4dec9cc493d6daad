/* th-ping_rtt: one client's MQTT ping round trip while another client tries
 * to stall the broker (issue 17 point 3).  Loopback only, bounded in time.
 *
 * The pinger (credentials line 0) connects over WebSocket, then sends a
 * PINGREQ every -i ms and times the PINGRESP, for -d seconds.  Meanwhile -a
 * attacker threads (credentials line 1) connect and, round after round until
 * the end, send one of:
 *   bigsub   one SUBSCRIBE of -f filters (chat/<id>/+ of channels that do
 *            not exist: each is refused, each a distinct lookup) in one frame;
 *   manysub  -f SUBSCRIBE packets of one such filter each, in one write;
 *   manypub  -f chat PUBLISH packets (QoS 0, valid payloads) in one write;
 *   none     nothing (the baseline).
 * An attacker the broker closes connects again.  Prints the pinger's
 * p50/p99/max in ms, and per attacker what it sent and how often it was
 * closed.
 *
 * Usage: th-ping_rtt -c creds [-h 127.0.0.1] [-p port] [-P /mqtt] [-m mode]
 *   [-f 40000] [-a 1] [-d 10] [-i 10]
 * creds: lines "uid channel_id token" (tests/load/loadlib.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "loadlib.h"

#define MAX_ATTACKERS 8

static const char *host = "127.0.0.1", *path = "/mqtt", *mode = "bigsub";
static int port, nfilters = 40000, nattack = 1, interval_ms = 10;
static double dur_s = 10;
static struct ll_cred *creds;
static size_t ncreds;
static int64_t t_end;

struct ws {
	int fd;
	struct ll_buf in; /* MQTT bytes received, across frames */
};

struct attacker {
	pthread_t th;
	int idx;
	long long rounds, closed, connects, conn_fail;
	double close_ms_max; /* send -> close, longest */
};

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

static int write_all(int fd, const unsigned char *p, size_t n)
{
	while (n) {
		ssize_t k = send(fd, p, n, MSG_NOSIGNAL);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

/* One masked binary frame around d (mask key 0: masked as the protocol
 * wants, no XOR needed). */
static void ws_frame(struct ll_buf *out, const unsigned char *d, size_t n)
{
	unsigned char h[14];
	size_t k = 0;

	h[k++] = 0x82;
	if (n < 126) {
		h[k++] = (unsigned char)(0x80 | n);
	} else if (n < 65536) {
		h[k++] = 0x80 | 126;
		h[k++] = (unsigned char)(n >> 8);
		h[k++] = (unsigned char)n;
	} else {
		h[k++] = 0x80 | 127;
		for (int i = 7; i >= 0; i--)
			h[k++] = (unsigned char)((uint64_t)n >> (8 * i));
	}
	memset(h + k, 0, 4);
	k += 4;
	ll_buf_add(out, h, k);
	ll_buf_add(out, d, n);
}

static int ws_send(struct ws *w, const unsigned char *d, size_t n)
{
	struct ll_buf b = {0};
	int r;

	ws_frame(&b, d, n);
	r = write_all(w->fd, b.p, b.len);
	ll_buf_free(&b);
	return r;
}

/* Reads one frame's payload into w->in.  0, or -1 on close/error/timeout. */
static int ws_read_frame(struct ws *w)
{
	unsigned char h[10], *p;
	uint64_t n;
	size_t got = 0;

	if (recv(w->fd, h, 2, MSG_WAITALL) != 2)
		return -1;
	n = h[1] & 127;
	if (n == 126) {
		if (recv(w->fd, h + 2, 2, MSG_WAITALL) != 2)
			return -1;
		n = ((uint64_t)h[2] << 8) | h[3];
	} else if (n == 127) {
		if (recv(w->fd, h + 2, 8, MSG_WAITALL) != 8)
			return -1;
		n = 0;
		for (int i = 0; i < 8; i++)
			n = (n << 8) | h[2 + i];
	}
	if ((h[0] & 15) == 8 || n > (1u << 24))
		return -1; /* close frame */
	p = malloc(n ? n : 1);
	if (!p)
		ll_die("out of memory");
	while (got < n) {
		ssize_t k = recv(w->fd, p + got, n - got, 0);

		if (k <= 0) {
			free(p);
			return -1;
		}
		got += (size_t)k;
	}
	if ((h[0] & 15) == 2 || (h[0] & 15) == 0)
		ll_buf_add(&w->in, p, n);
	free(p);
	return 0;
}

/* Waits for the next MQTT packet; returns its first byte, -1 on close. */
static int mqtt_next(struct ws *w)
{
	for (;;) {
		size_t hdr, rl;
		int s = ll_mqtt_split(w->in.p, w->in.len, &hdr, &rl);

		if (s < 0)
			return -1;
		if (s == 1 && w->in.len >= hdr + rl) {
			int type = w->in.p[0];

			ll_buf_drop(&w->in, hdr + rl);
			return type;
		}
		if (ws_read_frame(w) < 0)
			return -1;
	}
}

static int ws_open(struct ws *w, const struct ll_cred *cr, const char *cid_tag)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	struct timeval tv = {5, 0};
	char req[512], resp[2048], cid[64];
	unsigned char pk[4096];
	size_t n = 0;
	int one = 1;

	memset(w, 0, sizeof(*w));
	w->fd = socket(AF_INET, SOCK_STREAM, 0);
	if (w->fd < 0 || inet_pton(AF_INET, host, &a.sin_addr) != 1)
		return -1;
	setsockopt(w->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(w->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(w->fd, (struct sockaddr *)&a, sizeof(a)) < 0)
		goto fail;
	snprintf(req, sizeof(req),
		 "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
		 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
		 "Sec-WebSocket-Protocol: mqtt\r\n\r\n",
		 path, host, port);
	if (write_all(w->fd, (const unsigned char *)req, strlen(req)) < 0)
		goto fail;
	while (n < sizeof(resp) - 1) {
		ssize_t k = recv(w->fd, resp + n, 1, 0);

		if (k <= 0)
			goto fail;
		n++;
		if (n >= 4 && memcmp(resp + n - 4, "\r\n\r\n", 4) == 0)
			break;
	}
	resp[n] = '\0';
	if (strncmp(resp, "HTTP/1.1 101", 12) != 0)
		goto fail;
	snprintf(cid, sizeof(cid), "u%lld-%s%d", cr->uid, cid_tag, (int)getpid());
	n = ll_mqtt_connect(pk, sizeof(pk), cid, "rtt", cr->token, 60);
	if (!n || ws_send(w, pk, n) < 0)
		goto fail;
	/* CONNACK, accepted: 20 02 00 00 */
	while (w->in.len < 4)
		if (ws_read_frame(w) < 0)
			goto fail;
	if (w->in.p[0] != 0x20 || w->in.p[3] != 0)
		goto fail;
	ll_buf_drop(&w->in, 4);
	return 0;
fail:
	close(w->fd);
	w->fd = -1;
	ll_buf_free(&w->in);
	return -1;
}

static void ws_close(struct ws *w)
{
	if (w->fd >= 0)
		close(w->fd);
	w->fd = -1;
	ll_buf_free(&w->in);
}

/* The attack packets of one round, framed. */
static void build_round(struct ll_buf *out, const struct ll_cred *cr, long long round)
{
	char topic[64], payload[160];
	unsigned char pk[256];
	size_t n;

	if (strcmp(mode, "bigsub") == 0) {
		struct ll_buf body = {0};
		unsigned char hd[8];
		size_t k = 0, len;

		for (int i = 0; i < nfilters; i++) {
			int fl = snprintf(topic, sizeof(topic), "chat/%lld/+",
					  900000000LL + round * nfilters + i);
			unsigned char b[2] = {(unsigned char)(fl >> 8), (unsigned char)fl};

			ll_buf_add(&body, b, 2);
			ll_buf_add(&body, topic, (size_t)fl);
			ll_buf_add(&body, "\0", 1);
		}
		len = body.len + 2;
		hd[k++] = 0x82;
		do {
			unsigned char d = len % 128;

			len /= 128;
			if (len)
				d |= 128;
			hd[k++] = d;
		} while (len);
		hd[k++] = 0;
		hd[k++] = 1;
		{
			struct ll_buf pkt = {0};

			ll_buf_add(&pkt, hd, k);
			ll_buf_add(&pkt, body.p, body.len);
			ws_frame(out, pkt.p, pkt.len);
			ll_buf_free(&pkt);
		}
		ll_buf_free(&body);
	} else if (strcmp(mode, "manysub") == 0) {
		for (int i = 0; i < nfilters; i++) {
			snprintf(topic, sizeof(topic), "chat/%lld/+",
				 900000000LL + round * nfilters + i);
			n = ll_mqtt_subscribe(pk, sizeof(pk), topic, 0);
			ws_frame(out, pk, n);
		}
	} else if (strcmp(mode, "manypub") == 0) {
		snprintf(topic, sizeof(topic), "chat/%lld/%lld", cr->chid, cr->uid);
		for (int i = 0; i < nfilters; i++) {
			int pl = snprintf(payload, sizeof(payload),
					  "{\"id\":\"%08x-0000-4000-8000-%012llx\",\"body\":"
					  "\"flood %d\"}",
					  i, (unsigned long long)round, i);

			n = ll_mqtt_publish(pk, sizeof(pk), topic, 0, 0, payload, (size_t)pl);
			ws_frame(out, pk, n);
		}
	}
}

static void *attack(void *arg)
{
	struct attacker *at = arg;
	const struct ll_cred *cr = &creds[1 % ncreds];
	char tag[16];

	snprintf(tag, sizeof(tag), "atk%d-", at->idx);
	while (ll_now_ns() < t_end) {
		struct ws w;
		int64_t t0;

		at->connects++;
		if (ws_open(&w, cr, tag) < 0) {
			at->conn_fail++;
			sleep_ms(50);
			continue;
		}
		while (ll_now_ns() < t_end) {
			struct ll_buf out = {0};
			struct timeval tv = {0, 200000};
			int gone = 0;

			build_round(&out, cr, at->rounds);
			at->rounds++;
			t0 = ll_now_ns();
			if (out.len && write_all(w.fd, out.p, out.len) < 0)
				gone = 1;
			ll_buf_free(&out);
			/* drain what the broker answers; a close ends the connection */
			setsockopt(w.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
			while (!gone && ll_now_ns() < t_end) {
				if (ws_read_frame(&w) < 0) {
					gone = errno != EAGAIN && errno != EWOULDBLOCK;
					break;
				}
				ll_buf_drop(&w.in, w.in.len);
			}
			if (gone) {
				double ms = (double)(ll_now_ns() - t0) / 1e6;

				at->closed++;
				if (ms > at->close_ms_max)
					at->close_ms_max = ms;
				break;
			}
			if (strcmp(mode, "none") == 0)
				sleep_ms(100);
		}
		ws_close(&w);
	}
	return NULL;
}

static void usage(void)
{
	fprintf(stderr, "usage: th-ping_rtt -c creds [-h host] [-p port] [-P path] "
			"[-m bigsub|manysub|manypub|none] [-f n] [-a attackers] [-d s] [-i ms]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct attacker at[MAX_ATTACKERS] = {0};
	/* static: its buckets live for the process (loadlib.h) and stay
	 * reachable; 5 s is the pinger's read timeout */
	static struct ll_hist h = {.lim_us = 5 * 1000 * 1000};
	const char *cf = NULL;
	struct ws w;
	long long lost = 0;
	int o;

	ll_prog = "th-ping_rtt";
	while ((o = getopt(argc, argv, "c:h:p:P:m:f:a:d:i:")) != -1) {
		switch (o) {
		case 'c':
			cf = optarg;
			break;
		case 'h':
			host = optarg;
			break;
		case 'p':
			port = atoi(optarg);
			break;
		case 'P':
			path = optarg;
			break;
		case 'm':
			mode = optarg;
			break;
		case 'f':
			nfilters = atoi(optarg);
			break;
		case 'a':
			nattack = atoi(optarg);
			break;
		case 'd':
			dur_s = atof(optarg);
			break;
		case 'i':
			interval_ms = atoi(optarg);
			break;
		default:
			usage();
		}
	}
	if (!cf || port <= 0 || nfilters < 1 || nfilters > 200000 || nattack < 0 ||
	    nattack > MAX_ATTACKERS || dur_s <= 0 || dur_s > 300 || interval_ms < 1)
		usage();
	creds = ll_creds_load(cf, &ncreds);
	if (ws_open(&w, &creds[0], "ping-") < 0)
		ll_die("pinger: cannot connect");
	t_end = ll_now_ns() + (int64_t)(dur_s * 1e9);
	for (int i = 0; i < nattack; i++) {
		at[i].idx = i;
		if (pthread_create(&at[i].th, NULL, attack, &at[i]) != 0)
			ll_die("pthread_create");
	}
	sleep_ms(200); /* let the attack start */
	while (ll_now_ns() < t_end) {
		static const unsigned char ping[2] = {0xc0, 0};
		int64_t t0 = ll_now_ns();
		int type;

		if (ws_send(&w, ping, 2) < 0)
			ll_die("pinger: connection lost");
		while ((type = mqtt_next(&w)) >= 0 && type != 0xd0)
			;
		if (type < 0) {
			lost++;
			ll_hist_add(&h, ll_now_ns() - t0);
			ws_close(&w);
			if (ws_open(&w, &creds[0], "ping-") < 0)
				ll_die("pinger: cannot reconnect");
			continue;
		}
		ll_hist_add(&h, ll_now_ns() - t0);
		sleep_ms(interval_ms);
	}
	for (int i = 0; i < nattack; i++)
		pthread_join(at[i].th, NULL);
	ws_close(&w);
	printf("ping mode=%s filters=%d attackers=%d n=%lld lost=%lld p50=%.2f p99=%.2f max=%.2f "
	       "ms\n",
	       mode, nfilters, nattack, h.n, lost, ll_hist_q(&h, 0.5), ll_hist_q(&h, 0.99),
	       (double)h.max_us / 1000.0);
	for (int i = 0; i < nattack; i++)
		printf("attacker %d rounds=%lld connects=%lld connect_failed=%lld "
		       "closed_by_broker=%lld "
		       "longest_send_to_close=%.1f ms\n",
		       i, at[i].rounds, at[i].connects, at[i].conn_fail, at[i].closed,
		       at[i].close_ms_max);
	return 0;
}
