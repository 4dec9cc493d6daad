/* conn: see conn.h.
 *
 * Phases of a connection:
 *   HS       the HTTP upgrade request is arriving (at most HS_MAX bytes)
 *   CONNECT  WebSocket open, the MQTT CONNECT is arriving
 *   WAIT     CONNECT checked, waiting for an admission slot on its edge
 *   DIALING  connecting to the edge (the CONNECT waits in the edge buffer)
 *   PUMP     bytes flow both ways
 *   CLOSING  a last answer (HTTP error, CONNACK, close frame) is being sent;
 *            what the client still sends is read and dropped, so the close
 *            does not turn into a reset that loses that answer
 *   DEAD     closed, freed after the current batch of events
 *
 * Memory: an idle connection is this struct and nothing else; the three
 * buffers (handshake, to edge, to client) exist only while they hold bytes. */
#include "conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>
#include <wslay/wslay.h>

#include "addr.h"
#include "buf.h"
#include "edge.h"
#include "fmetrics.h"
#include "front.h"
#include "hs.h"
#include "ka.h"
#include "log.h"
#include "mconn.h"
#include "peek.h"
#include "wsf.h"

enum phase { P_HS = 0, P_CONNECT, P_WAIT, P_DIALING, P_PUMP, P_CLOSING, P_DEAD };

/* bytes waiting for the edge beyond which the client is not read */
#define UP_MAX (64 * 1024)
#define READ_CHUNK 16384
#define READS_PER_EVENT 4
#define CLOSING_MS 2000
#define IDLE_SLACK_MS 5000

struct conn {
	struct conn *next, *prev; /* wk.all, or wk.dead once closed */
	struct conn *wnext;       /* wk.waitq of its edge */
	struct tw_node tn;        /* wk.tw: when its phase's time runs out (due_of) */
	int cfd, efd;
	uint8_t phase, version, edge, edge_pos;
	uint8_t addr_counted, edge_counted, slot_held, upgraded, seen_edge_byte, shut_wr, dialed;
	uint8_t reason;    /* why CLOSING */
	uint8_t edge_more; /* the last edge read stopped at READS_PER_EVENT, not drained */
	uint16_t keepalive;
	uint16_t pings;
	uint32_t cev, eev; /* epoll events registered */
	uint8_t addr[16];
	struct wsf ws;
	struct peek pk;
	struct buf *hs, *up, *out;
	char *cid; /* cleaned, at most 64 characters */
	int64_t uid;
	int64_t t0, last_rx, deadline, ping_win;
	uint64_t bin, bout;
};

struct worker wk;

static uint8_t rbuf[READ_CHUNK];
static uint8_t pbuf[READ_CHUNK + 8];

/* --- epoll ---------------------------------------------------------------- */

static void *tag(struct conn *c, int edge)
{
	return (void *)((uintptr_t)c | (uintptr_t)edge);
}

static void set_events(int fd, uint32_t *cur, uint32_t ev, void *ptr)
{
	struct epoll_event e = {.events = ev, .data.ptr = ptr};

	if (fd < 0 || *cur == ev)
		return;
	if (epoll_ctl(wk.epfd, EPOLL_CTL_MOD, fd, &e) < 0)
		log_warn("wsfront: epoll_ctl: %s", strerror(errno));
	*cur = ev;
}

/* what each socket waits for, from the state */
static void interest(struct conn *c)
{
	uint32_t ce = 0, ee = 0;

	if (c->phase == P_DEAD)
		return;
	if (c->phase == P_CLOSING || buf_pending(c->up) < UP_MAX)
		ce |= EPOLLIN;
	if (buf_pending(c->out))
		ce |= EPOLLOUT;
	set_events(c->cfd, &c->cev, ce, tag(c, 0));
	if (c->efd >= 0) {
		/* Edge-triggered while pumping: each delivery is one read to a
		 * short read, and level-triggered epoll would poll the socket once
		 * more at the next wait only to find it empty (7 % of a front's
		 * samples in a broadcast).  A read cut off before it drained
		 * (edge_more) is level-triggered until a read drains it.
		 * EPOLLRDHUP: the edge's close may come with its last bytes,
		 * and then no event follows the read that takes them. */
		if (c->phase == P_PUMP)
			ee |= EPOLLIN | EPOLLRDHUP | (c->edge_more ? 0 : EPOLLET);
		if (c->phase == P_DIALING || buf_pending(c->up))
			ee |= EPOLLOUT;
		set_events(c->efd, &c->eev, ee, tag(c, 1));
	}
}

/* --- timeouts ------------------------------------------------------------------ */

/* the last millisecond c may spend in its phase: past it, conn_sweep acts */
static int64_t due_of(const struct conn *c)
{
	switch (c->phase) {
	case P_HS:
	case P_CONNECT:
	case P_WAIT:
		return c->t0 + cfg.handshake_ms;
	case P_PUMP:
		return c->last_rx + (c->keepalive ? (int64_t)c->keepalive * 1500 + IDLE_SLACK_MS
						  : (int64_t)cfg.idle_ms);
	default: /* DIALING, CLOSING */
		return c->deadline;
	}
}

/* after each change of phase: a deadline sooner than the one armed must not
 * wait for it (a later one is found when the earlier comes) */
static void rearm(struct conn *c)
{
	tw_arm(&wk.tw, &c->tn, due_of(c) + 1);
}

/* --- admission and edges ---------------------------------------------------- */

static void dial(struct conn *c, int from, int64_t now);
static void finish(struct conn *c, enum shm_reason r, int ws_code, const uint8_t *connack, size_t n,
		   int64_t now);

/* c waits in its edge's queue for a CONNECT slot of this worker there */
static void wait_slot(struct conn *c)
{
	int e = c->edge;

	c->phase = P_WAIT;
	rearm(c);
	if (wk.waitq_tail[e])
		wk.waitq_tail[e]->wnext = c;
	else
		wk.waitq[e] = c;
	wk.waitq_tail[e] = c;
	atomic_fetch_add(&wk.st->st[ST_WAITING], 1);
	interest(c);
}

static void slot_release(struct conn *c, int64_t now)
{
	int e = c->edge;
	struct conn *w;

	if (!c->slot_held)
		return;
	c->slot_held = 0;
	wk.inflight[e]--;
	atomic_fetch_sub(&wk.st->st[ST_INFLIGHT], 1);
	/* the next CONNECT waiting for this edge goes now */
	while ((w = wk.waitq[e]) && wk.inflight[e] < cfg.connect_inflight) {
		wk.waitq[e] = w->wnext;
		if (!wk.waitq[e])
			wk.waitq_tail[e] = NULL;
		w->wnext = NULL;
		atomic_fetch_sub(&wk.st->st[ST_WAITING], 1);
		dial(w, w->edge_pos, now);
	}
}

static void waitq_remove(struct conn *c)
{
	struct conn **pp = &wk.waitq[c->edge], *prev = NULL;

	while (*pp && *pp != c) {
		prev = *pp;
		pp = &(*pp)->wnext;
	}
	if (!*pp)
		return;
	*pp = c->wnext;
	if (wk.waitq_tail[c->edge] == c)
		wk.waitq_tail[c->edge] = prev;
	c->wnext = NULL;
	atomic_fetch_sub(&wk.st->st[ST_WAITING], 1);
}

static void edge_close(struct conn *c, int64_t now)
{
	if (c->efd >= 0) {
		close(c->efd);
		c->efd = -1;
		c->eev = 0;
	}
	if (c->edge_counted) {
		c->edge_counted = 0;
		atomic_fetch_sub(&wk.st->per_edge[c->edge], 1);
	}
	slot_release(c, now);
}

/* the edge failed to answer: marked down for every worker, the next one tried */
static void edge_failed(struct conn *c, int64_t now)
{
	log_warn("wsfront: edge %s unreachable, marked down for %u ms", cfg.edges[c->edge].name,
		 cfg.edge_down_ms);
	shm_edge_mark_down(wk.shm, c->edge, now + cfg.edge_down_ms);
	atomic_fetch_add(&wk.st->st[ST_EDGE_CONNECT_FAILS], 1);
	edge_close(c, now);
	dial(c, c->edge_pos + 1, now);
}

/* Picks the first edge at or after position from in the user's order that
 * is not down, and connects, or waits for a slot there. */
static void dial(struct conn *c, int from, int64_t now)
{
	int order[SHM_MAX_EDGES], pos, e, fd = -1;

	edge_rank(cfg.edges, cfg.n_edges, c->uid, order);
	e = edge_pick(wk.shm, order, cfg.n_edges, from, now, &pos);
	if (e < 0) {
		/* no CONNACK: clients (mqtt.js) do not retry after a refusal, but do
		 * after a closed connection, as when the broker itself is away */
		finish(c, R_NO_EDGE, 1013, NULL, 0, now);
		return;
	}
	c->edge = (uint8_t)e;
	c->edge_pos = (uint8_t)pos;
	if (wk.inflight[e] >= cfg.connect_inflight) {
		wait_slot(c);
		return;
	}
	c->slot_held = 1;
	wk.inflight[e]++;
	atomic_fetch_add(&wk.st->st[ST_INFLIGHT], 1);
	fd = edge_dial(&cfg.edges[e], 0);
	/* The broker's unix socket did not take it: mostly its backlog (10)
	 * full in a burst of connects.  Waiting for room would hold the slot
	 * idle (a measured run: CONNECTs per worker and edge fell to one at a
	 * time, 1,309 of 100,000 timed out), so this one takes the port, where
	 * the kernel's backlog queues it; a refusal there marks the edge down. */
	if (fd == -3) {
		atomic_fetch_add(&wk.st->st[ST_EDGE_VIA_PORT], 1);
		fd = edge_dial(&cfg.edges[e], 1);
	}
	if (fd == -2) {
		slot_release(c, now);
		finish(c, R_ERROR, 1011, NULL, 0, now);
		return;
	}
	if (fd < 0) {
		c->efd = -1;
		edge_failed(c, now);
		return;
	}
	{
		struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = tag(c, 1)};

		if (epoll_ctl(wk.epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
			close(fd);
			slot_release(c, now);
			finish(c, R_ERROR, 1011, NULL, 0, now);
			return;
		}
	}
	c->efd = fd;
	c->eev = EPOLLOUT;
	c->phase = P_DIALING;
	c->deadline = now + cfg.edge_connect_ms;
	rearm(c);
	c->edge_counted = 1;
	c->dialed = 1;
	atomic_fetch_add(&wk.st->per_edge[e], 1);
	interest(c);
}

/* --- sending to the client ---------------------------------------------------- */

static ssize_t wslay_send_cb(const uint8_t *data, size_t len, int flags, void *user)
{
	(void)flags;
	(void)user;
	if (!wk.wslay_cur || buf_append(&wk.wslay_cur->out, data, len) < 0)
		return -1;
	return (ssize_t)len;
}

static int wslay_genmask_cb(uint8_t *buf, size_t len, void *user)
{
	(void)user;
	memset(buf, 0, len); /* a server does not mask */
	return 0;
}

static const struct wslay_frame_callbacks wslay_cbs = {wslay_send_cb, NULL, wslay_genmask_cb};

int conn_init_worker(void)
{
	return wslay_frame_context_init(&wk.wslay, &wslay_cbs, NULL) == 0 ? 0 : -1;
}

/* Appends one unmasked frame to c->out with wslay.  The callback always
 * takes all bytes, so the shared context never keeps a partial frame; when
 * it fails (out of memory) the context is made anew. */
static int ws_send(struct conn *c, int op, const uint8_t *p, size_t n)
{
	struct wslay_frame_iocb io = {.fin = 1,
				      .opcode = (uint8_t)op,
				      .payload_length = n,
				      .data = p,
				      .data_length = n};
	ssize_t r;

	wk.wslay_cur = c;
	r = wslay_frame_send(wk.wslay, &io);
	wk.wslay_cur = NULL;
	if (r < 0 || (size_t)r != n) {
		wslay_frame_context_free(wk.wslay);
		wk.wslay = NULL;
		if (conn_init_worker() < 0)
			log_error("wsfront: wslay context: out of memory");
		return -1;
	}
	return 0;
}

static int ws_send_close(struct conn *c, int code)
{
	uint8_t p[2] = {(uint8_t)(code >> 8), (uint8_t)code};

	return ws_send(c, WSF_CLOSE, p, 2);
}

/* --- closing ---------------------------------------------------------------- */

static void close_now(struct conn *c, enum shm_reason r, int64_t now)
{
	char a[INET6_ADDRSTRLEN];

	if (c->phase == P_DEAD)
		return;
	if (c->phase == P_WAIT)
		waitq_remove(c);
	if (r != R_METRICS)
		log_info("wsfront: close addr=%s cid=%s edge=%s in=%llu out=%llu ms=%lld reason=%s",
			 addr_text(c->addr, a, sizeof(a)), c->cid ? c->cid : "-",
			 c->dialed ? cfg.edges[c->edge].name : "-", (unsigned long long)c->bin,
			 (unsigned long long)c->bout, (long long)(now - c->t0), shm_reason_name(r));
	atomic_fetch_add(&wk.st->closes[r], 1);
	edge_close(c, now);
	tw_cancel(&wk.tw, &c->tn);
	if (c->addr_counted)
		shm_addr_release(wk.shm, wk.id, c->addr);
	if (c->upgraded) {
		wk.nupgraded--;
		atomic_fetch_sub(&wk.st->st[ST_CONNS], 1);
	}
	wk.nconns--;
	close(c->cfd);
	c->cfd = -1;
	wsf_reset(&c->ws);
	free(c->hs);
	free(c->up);
	free(c->out);
	free(c->cid);
	c->hs = c->up = c->out = NULL;
	c->cid = NULL;
	/* out of the list of the living, into the dead */
	if (c->prev)
		c->prev->next = c->next;
	else
		wk.all = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->phase = P_DEAD;
	c->prev = NULL;
	c->next = wk.dead;
	wk.dead = c;
}

/* Sends a last answer (an MQTT CONNACK and/or a close frame when the
 * WebSocket is open; raw bytes are an HTTP response before it), then closes
 * once it is out (or after CLOSING_MS). */
static void finish_raw(struct conn *c, enum shm_reason r, const void *raw, size_t rawn, int64_t now)
{
	if (c->phase == P_CLOSING || c->phase == P_DEAD)
		return;
	if (c->phase == P_WAIT)
		waitq_remove(c);
	edge_close(c, now);
	free(c->up);
	c->up = NULL;
	if (raw && buf_append(&c->out, raw, rawn) < 0) {
		close_now(c, R_ERROR, now);
		return;
	}
	c->phase = P_CLOSING;
	c->reason = (uint8_t)r;
	c->deadline = now + CLOSING_MS;
	rearm(c);
	if (buf_flush(c->cfd, &c->out) < 0) {
		close_now(c, r, now);
		return;
	}
	if (!c->out) {
		shutdown(c->cfd, SHUT_WR);
		c->shut_wr = 1;
	}
	interest(c);
}

static void finish(struct conn *c, enum shm_reason r, int ws_code, const uint8_t *connack, size_t n,
		   int64_t now)
{
	if (c->phase == P_CLOSING || c->phase == P_DEAD)
		return;
	if (c->upgraded) {
		if (connack && ws_send(c, WSF_BINARY, connack, n) < 0)
			ws_code = 0;
		if (ws_code && ws_send_close(c, ws_code) < 0) {
			close_now(c, R_ERROR, now);
			return;
		}
	}
	finish_raw(c, r, NULL, 0, now);
}

/* --- the handshake ------------------------------------------------------------- */

static void http_refuse(struct conn *c, enum shm_reason r, int64_t now)
{
	static const struct {
		enum shm_reason r;
		const char *status, *extra, *body;
	} answers[] = {
		{R_BAD_REQUEST, "400 Bad Request", "Sec-WebSocket-Version: 13\r\n",
		 "a WebSocket upgrade (version 13) is expected here\n"},
		{R_NO_SUBPROTOCOL, "400 Bad Request", "",
		 "the WebSocket subprotocol 'mqtt' is required\n"},
		{R_BAD_ORIGIN, "403 Forbidden", "", "origin not allowed\n"},
		{R_NOT_FOUND, "404 Not Found", "", "no such path: MQTT is at /mqtt\n"},
		{R_TOO_LARGE, "431 Request Header Fields Too Large", "", "request over 8 KiB\n"},
		{R_PER_ADDR, "429 Too Many Requests", "Retry-After: 10\r\n",
		 "too many connections from this address\n"},
		{R_MAX_CONNS, "503 Service Unavailable", "Retry-After: 5\r\n",
		 "too many connections\n"},
	};
	char resp[512];
	size_t i;
	int n;

	for (i = 0; i < sizeof(answers) / sizeof(answers[0]) - 1 && answers[i].r != r; i++)
		;
	n = snprintf(resp, sizeof(resp),
		     "HTTP/1.1 %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n%s"
		     "Connection: close\r\n\r\n%s",
		     answers[i].status, strlen(answers[i].body), answers[i].extra, answers[i].body);
	finish_raw(c, r, resp, (size_t)n, now);
}

static void serve_metrics(struct conn *c, const struct sockaddr_storage *peer, int64_t now)
{
	char *text = NULL, head[160];
	size_t len = 0;
	int n;

	(void)peer;
	if (fmetrics_render(wk.shm, &text, &len) < 0) {
		finish_raw(c, R_ERROR, NULL, 0, now);
		return;
	}
	n = snprintf(head, sizeof(head),
		     "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n"
		     "Content-Length: %zu\r\nConnection: close\r\n\r\n",
		     len);
	if (buf_append(&c->out, head, (size_t)n) < 0) {
		free(text);
		close_now(c, R_ERROR, now);
		return;
	}
	finish_raw(c, R_METRICS, text, len, now);
	free(text);
}

static void frames_in(struct conn *c, uint8_t *p, size_t n, int64_t now);

static void handshake_in(struct conn *c, const uint8_t *p, size_t n, int64_t now)
{
	struct hs_req req;
	enum hs_parse_result pr;
	char key[29], resp[256];
	int len, r;

	size_t from = c->hs ? c->hs->len : 0;

	if (buf_append(&c->hs, p, n) < 0) {
		close_now(c, R_ERROR, now);
		return;
	}
	/* parsed once the end of the headers came (in these bytes, or across
	 * the 3 before them), or the request is too long: a request dribbled a
	 * byte a read is not parsed again from its start at every byte */
	from = from > 3 ? from - 3 : 0;
	if (c->hs->len < HS_MAX && !memmem(c->hs->d + from, c->hs->len - from, "\r\n\r\n", 4))
		return;
	pr = hs_parse((const char *)c->hs->d, c->hs->len, &req);
	if (pr == HS_INCOMPLETE)
		return;
	if (pr == HS_TOO_LARGE) {
		http_refuse(c, R_TOO_LARGE, now);
		return;
	}
	if (pr == HS_MALFORMED) {
		http_refuse(c, R_BAD_REQUEST, now);
		return;
	}
	switch (hs_check(&req, cfg.origins)) {
	case HS_UPGRADE:
		break;
	case HS_METRICS:
		if (!addr_is_loopback(c->addr))
			http_refuse(c, R_NOT_FOUND, now);
		else
			serve_metrics(c, NULL, now);
		return;
	case HS_NO_SUBPROTOCOL:
		http_refuse(c, R_NO_SUBPROTOCOL, now);
		return;
	case HS_BAD_ORIGIN:
		http_refuse(c, R_BAD_ORIGIN, now);
		return;
	case HS_NOT_FOUND:
		http_refuse(c, R_NOT_FOUND, now);
		return;
	default:
		http_refuse(c, R_BAD_REQUEST, now);
		return;
	}
	addr_client(c->addr, &req, cfg.trusted, cfg.n_trusted);
	if (wk.nupgraded >= cfg.max_conns) {
		http_refuse(c, R_MAX_CONNS, now);
		return;
	}
	r = shm_addr_acquire(wk.shm, wk.id, c->addr, cfg.max_per_addr);
	if (r < 0) {
		http_refuse(c, r == -1 ? R_PER_ADDR : R_MAX_CONNS, now);
		return;
	}
	c->addr_counted = 1;
	if (hs_accept_key(req.key, key) < 0) {
		close_now(c, R_ERROR, now);
		return;
	}
	len = snprintf(resp, sizeof(resp),
		       "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
		       "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n"
		       "Sec-WebSocket-Protocol: mqtt\r\n\r\n",
		       key);
	if (buf_append(&c->out, resp, (size_t)len) < 0) {
		close_now(c, R_ERROR, now);
		return;
	}
	c->upgraded = 1;
	wk.nupgraded++;
	atomic_fetch_add(&wk.st->st[ST_CONNS], 1);
	c->phase = P_CONNECT;
	rearm(c);
	atomic_fetch_add(&wk.st->st[ST_HANDSHAKES], 1);
	{
		/* bytes after the request: the first frames */
		struct buf *hs = c->hs;
		size_t rest = hs->len - req.len;

		c->hs = NULL;
		if (rest)
			frames_in(c, hs->d + req.len, rest, now);
		free(hs);
	}
}

/* --- client -> edge ----------------------------------------------------------- */

struct feed_ctx {
	struct conn *c;
	int64_t now;
	enum shm_reason stop; /* set by a callback that stopped the decoder */
	int ws_code;
};

static void connect_checked(struct conn *c, int64_t now)
{
	struct mconn m;
	enum mconn_result r = mconn_parse(c->up->d + c->up->off, c->pk.connect_len, &m);
	uint8_t ack[5];
	char cid[65];

	if (r == MCONN_OK)
		r = mconn_will_check(&m);
	if (m.cid) {
		size_t i, n = m.cid_len < 64 ? m.cid_len : 64;

		for (i = 0; i < n; i++)
			cid[i] = m.cid[i] > 0x20 && m.cid[i] < 0x7f ? (char)m.cid[i] : '?';
		cid[n] = '\0';
		c->cid = strdup(cid);
	}
	c->version = (uint8_t)(m.version ? m.version : 4);
	if (r != MCONN_OK) {
		log_info("wsfront: CONNECT refused (%s) cid=%s", mconn_result_name(r),
			 c->cid ? c->cid : "-");
		if (r == MCONN_MALFORMED)
			finish(c, R_PROTOCOL, 1002, NULL, 0, now);
		else
			finish(c, R_CONNECT_REFUSED, 1000, ack, mconn_connack(c->version, r, ack),
			       now);
		return;
	}
	c->uid = m.uid;
	c->keepalive = (uint16_t)m.keepalive;
	c->phase = P_WAIT; /* until dial() says otherwise */
	rearm(c);
	dial(c, 0, now);
}

static int on_data(void *user, const uint8_t *p, size_t n)
{
	struct feed_ctx *f = user;
	struct conn *c = f->c;
	size_t outn;
	enum peek_err e;

	if (c->phase == P_CLOSING)
		return 0; /* dropped */
	e = peek_feed(&c->pk, p, n, cfg.max_packet, pbuf, &outn);
	if (e != PEEK_OK) {
		f->stop = e == PEEK_TOO_BIG ? R_PACKET_TOO_BIG : R_PROTOCOL;
		f->ws_code = e == PEEK_TOO_BIG ? 1009 : 1002;
		return -1;
	}
	if (buf_append(&c->up, pbuf, outn) < 0) {
		f->stop = R_ERROR;
		f->ws_code = 1011;
		return -1;
	}
	c->bin += outn;
	atomic_fetch_add(&wk.st->st[ST_BYTES_IN], (int64_t)outn);
	return 0;
}

static int on_control(void *user, int op, const uint8_t *p, size_t n)
{
	struct feed_ctx *f = user;
	struct conn *c = f->c;

	if (op == WSF_PING) {
		if (f->now - c->ping_win >= 1000) {
			c->ping_win = f->now;
			c->pings = 0;
		}
		if (++c->pings > cfg.pings_per_s) {
			f->stop = R_PING_FLOOD;
			f->ws_code = 1008;
			return -1;
		}
		if (c->phase != P_CLOSING && ws_send(c, WSF_PONG, p, n) < 0) {
			f->stop = R_ERROR;
			f->ws_code = 1011;
			return -1;
		}
		/* pongs count against the same bound as deliveries: a client
		 * that pings and never reads would grow them for ever (its
		 * pings keep the idle timeout away) */
		if (buf_pending(c->out) > cfg.out_max) {
			f->stop = R_SLOW_READER;
			f->ws_code = 0;
			return -1;
		}
	} else if (op == WSF_CLOSE) {
		f->stop = R_CLIENT_GONE;
		/* echo the client's code (1000 when it gave none) */
		f->ws_code = n >= 2 ? (p[0] << 8 | p[1]) : 1000;
		if (f->ws_code < 1000 || f->ws_code >= 5000 || f->ws_code == 1005 ||
		    f->ws_code == 1006)
			f->ws_code = 1002;
		return -1;
	}
	return 0;
}

/* The client is going (a close frame, or the end of its stream): what it sent
 * before that and the edge has not taken yet goes to the edge now, before
 * the edge's socket is closed: an MQTT DISCONNECT and the last publishes
 * often come in the same read as the close (mqtt.js end() writes them back
 * to back), and a DISCONNECT lost makes the broker send the client's will.
 * As much as the edge's socket takes at once; the rest is lost with the
 * connection, as it would be if the edge had closed. */
static void up_last(struct conn *c)
{
	if (c->phase == P_PUMP && c->efd >= 0 && c->up)
		(void)buf_flush(c->efd, &c->up);
}

static void frames_in(struct conn *c, uint8_t *p, size_t n, int64_t now)
{
	struct feed_ctx f = {c, now, R_N, 0};
	struct wsf_cb cb = {&f, cfg.max_packet, on_data, on_control};
	enum wsf_err e = wsf_feed(&c->ws, p, n, &cb);

	if (c->phase == P_CLOSING || c->phase == P_DEAD)
		return;
	if (e != WSF_OK) {
		if (e == WSF_STOP) {
			if (f.stop == R_CLIENT_GONE)
				up_last(c);
			finish(c, f.stop, f.ws_code, NULL, 0, now);
		} else {
			enum shm_reason r = e == WSF_TOO_BIG      ? R_FRAME_TOO_BIG
					    : e == WSF_NOT_BINARY ? R_NOT_BINARY
					    : e == WSF_NOMEM      ? R_ERROR
								  : R_PROTOCOL;

			finish(c, r, wsf_close_code(e), NULL, 0, now);
		}
		return;
	}
	if (c->phase == P_CONNECT && c->pk.first_done)
		connect_checked(c, now);
}

static void client_readable(struct conn *c, int64_t now)
{
	int i;

	for (i = 0; i < READS_PER_EVENT && c->phase != P_DEAD; i++) {
		ssize_t n;

		/* back-pressure: the edge has not taken what we have */
		if (c->phase != P_CLOSING && buf_pending(c->up) >= UP_MAX)
			break;
		n = read(c->cfd, rbuf, sizeof(rbuf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0) {
			if (n == 0)
				up_last(c);
			close_now(c,
				  c->phase == P_CLOSING ? (enum shm_reason)c->reason
							: R_CLIENT_GONE,
				  now);
			return;
		}
		c->last_rx = now;
		if (c->phase == P_CLOSING)
			continue; /* dropped */
		if (c->phase == P_HS)
			handshake_in(c, rbuf, (size_t)n, now);
		else
			frames_in(c, rbuf, (size_t)n, now);
		/* a short read took all there was: the next would be EAGAIN
		 * (epoll is level-triggered, so what comes later is reported) */
		if ((size_t)n < sizeof(rbuf))
			break;
	}
}

/* --- edge -> client ------------------------------------------------------------ */

static void edge_readable(struct conn *c, uint32_t events, int64_t now)
{
	/* the edge closed: read on to the end (0), a short read is no sign of it */
	int closing = (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0;
	int i;

	c->edge_more = 0;
	for (i = 0; i < READS_PER_EVENT && c->phase == P_PUMP; i++) {
		ssize_t n = read(c->efd, rbuf, sizeof(rbuf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0) {
			finish(c, R_EDGE_GONE, 1001, NULL, 0, now);
			return;
		}
		if (!c->seen_edge_byte) {
			/* the CONNACK (or AUTH): the edge is done with this CONNECT */
			c->seen_edge_byte = 1;
			slot_release(c, now);
		}
		c->bout += (uint64_t)n;
		atomic_fetch_add(&wk.st->st[ST_BYTES_OUT], n);
		if (ws_send(c, WSF_BINARY, rbuf, (size_t)n) < 0) {
			close_now(c, R_ERROR, now);
			return;
		}
		if (buf_pending(c->out) > cfg.out_max) {
			close_now(c, R_SLOW_READER, now);
			return;
		}
		/* a short read took all there was (a stream socket returns what
		 * it holds, up to the size): the next read would be EAGAIN, one
		 * syscall a delivery saved; what arrives later is a new event */
		if ((size_t)n < sizeof(rbuf) && !closing)
			break;
	}
	if (i == READS_PER_EVENT)
		c->edge_more = 1; /* see interest() */
	if (buf_flush(c->cfd, &c->out) < 0)
		close_now(c, R_CLIENT_GONE, now);
}

/* --- events ---------------------------------------------------------------------- */

/* logged once a worker: the same refusal would repeat for every client */
static void ka_failed(void)
{
	static int logged;

	if (!logged)
		log_warn("wsfront: TCP keepalive not set on a client socket: %s", strerror(errno));
	logged = 1;
}

void conn_accept(int fd, const struct sockaddr_storage *peer, int64_t now)
{
	struct conn *c = calloc(1, sizeof(*c));
	struct epoll_event ev = {.events = EPOLLIN};
	int one = 1;

	if (!c) {
		close(fd);
		return;
	}
	c->cfd = fd;
	c->efd = -1;
	c->t0 = c->last_rx = now;
	tw_node_init(&c->tn);
	addr_from_sockaddr(peer, c->addr);
	/* half-open clients: the kernel probes an idle socket (the idle check
	 * closes a silent client too, but only after 1.5 x its keepalive, which
	 * the client chooses); rarely, and not all at once (ka.h) */
	if (ka_apply(fd, cfg.tcp_keepalive_s,
		     ((uint64_t)(uintptr_t)c ^ (uint64_t)now) * 0x9e3779b97f4a7c15ull >> 17) < 0)
		ka_failed(); /* served all the same: the idle check stays */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	ev.data.ptr = tag(c, 0);
	if (epoll_ctl(wk.epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		close(fd);
		free(c);
		return;
	}
	c->cev = EPOLLIN;
	rearm(c);
	c->next = wk.all;
	if (wk.all)
		wk.all->prev = c;
	wk.all = c;
	wk.nconns++;
	atomic_fetch_add(&wk.st->st[ST_ACCEPTED], 1);
}

void conn_client_event(struct conn *c, uint32_t events, int64_t now)
{
	if (c->phase == P_DEAD)
		return;
	if (events & EPOLLOUT) {
		if (buf_flush(c->cfd, &c->out) < 0) {
			close_now(c,
				  c->phase == P_CLOSING ? (enum shm_reason)c->reason
							: R_CLIENT_GONE,
				  now);
			return;
		}
		if (c->phase == P_CLOSING && !c->out && !c->shut_wr) {
			shutdown(c->cfd, SHUT_WR);
			c->shut_wr = 1;
		}
	}
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
		client_readable(c, now);
	if (c->phase == P_DEAD)
		return;
	/* a reset or an error is reported at every wait until the socket is
	 * read; back-pressure (the edge slower than the client, or a CONNECT
	 * waiting for admission) kept client_readable from reading, so it would
	 * be reported for ever: a worker spinning at a whole core until the
	 * edge drains or a timeout fires */
	if ((events & (EPOLLHUP | EPOLLERR)) && c->phase != P_CLOSING &&
	    buf_pending(c->up) >= UP_MAX) {
		close_now(c, R_CLIENT_GONE, now);
		return;
	}
	if (c->efd >= 0 && c->phase == P_PUMP && buf_flush(c->efd, &c->up) < 0) {
		finish(c, R_EDGE_GONE, 1001, NULL, 0, now);
		return;
	}
	if (buf_flush(c->cfd, &c->out) < 0) {
		close_now(c, R_CLIENT_GONE, now);
		return;
	}
	interest(c);
}

void conn_edge_event(struct conn *c, uint32_t events, int64_t now)
{
	if (c->phase == P_DEAD || c->efd < 0)
		return;
	if (c->phase == P_DIALING) {
		int err = 0;
		socklen_t l = sizeof(err);

		if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			return;
		if (getsockopt(c->efd, SOL_SOCKET, SO_ERROR, &err, &l) < 0 || err) {
			edge_failed(c, now);
			return;
		}
		c->phase = P_PUMP;
		rearm(c);
	}
	if (c->phase != P_PUMP)
		return;
	if ((events & EPOLLOUT) && buf_flush(c->efd, &c->up) < 0) {
		finish(c, R_EDGE_GONE, 1001, NULL, 0, now);
		return;
	}
	if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		edge_readable(c, events, now);
	if (c->phase != P_DEAD)
		interest(c);
}

int conn_is_dead(const struct conn *c)
{
	return c->phase == P_DEAD;
}

void conn_sweep(int64_t now)
{
	struct tw_node *n;

	tw_expire(&wk.tw, now);
	while ((n = tw_next(&wk.tw))) {
		struct conn *c = (struct conn *)(void *)((char *)n - offsetof(struct conn, tn));

		if (c->phase == P_DEAD)
			continue;
		if (now <= due_of(c)) {
			rearm(c); /* the client spoke since, or the phase moved on */
			continue;
		}
		switch (c->phase) {
		case P_HS:
			close_now(c, R_HANDSHAKE_TIMEOUT, now);
			break;
		case P_CONNECT:
		case P_WAIT:
			finish(c, R_HANDSHAKE_TIMEOUT, 1008, NULL, 0, now);
			break;
		case P_DIALING:
			edge_failed(c, now);
			break;
		case P_PUMP:
			finish(c, R_IDLE, 1001, NULL, 0, now);
			break;
		default: /* CLOSING */
			close_now(c, (enum shm_reason)c->reason, now);
			break;
		}
		/* whatever came of it, a connection still open stays on the wheel */
		if (c->phase != P_DEAD && c->tn.where < 0)
			rearm(c);
	}
}

void conn_close_all(int64_t now)
{
	while (wk.all)
		close_now(wk.all, R_SHUTDOWN, now);
	conn_reap();
}

void conn_reap(void)
{
	while (wk.dead) {
		struct conn *c = wk.dead;

		wk.dead = c->next;
		free(c);
	}
}
