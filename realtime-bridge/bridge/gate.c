/* gate: holds back the PUBACKs of messages not yet committed.
 *
 * libmosquitto 2.0 acknowledges an incoming QoS 1 PUBLISH on its own (it
 * queues the PUBACK around on_message) and has no manual-ack API, so the
 * only way to keep an acknowledgement from leaving is not to write at all
 * — which also keeps back the PUBACKs of every message read after it, and
 * makes the bridge read, commit and write in lock step.
 *
 * The gate sits between libmosquitto and the broker, in this process:
 * right after connecting, the TCP socket is moved to a private descriptor
 * and libmosquitto's descriptor number is pointed (dup2) at one end of a
 * socketpair whose other end the gate owns.  Bytes from the broker are
 * copied to libmosquitto unchanged.  Bytes from libmosquitto are split into
 * MQTT packets (fixed header: type byte, variable-length remaining length):
 * every PUBACK is held in arrival order, everything else (CONNECT,
 * SUBSCRIBE, receipts and events, PINGREQ, DISCONNECT) goes straight on.
 * The k-th PUBACK libmosquitto writes answers the k-th QoS 1 message it
 * handed to on_message; gate_note_message() records each message's packet
 * id so the gate checks that correspondence for every PUBACK instead of
 * assuming it, and drops the connection (never acknowledges) on a mismatch.
 * gate_release(n) lets the first n PUBACKs of this connection go: main.c
 * calls it with the number of leading messages that are committed (or
 * otherwise settled), so a batch's PUBACKs leave strictly after its commit
 * and in the order the broker sent the messages.
 *
 * Bounds: the broker should send at most receive-maximum unacknowledged
 * messages; whatever it sends, the gate lets at most GATE_HELD_MAX QoS 1
 * messages through to libmosquitto whose PUBACKs have not left (clear_in),
 * so the held ring never overflows: the realtime-100k bench saw the hub
 * exceed the receive maximum after a reconnect storm, and the gate, which
 * gave up the connection then, made th-bridge reconnect every few seconds
 * (each time re-sending every unreleased message).  The copy buffers are
 * fixed (GATE_BUF); when one is full the gate stops reading from the side
 * that fills it, and TCP flow control does the rest. */
#include <errno.h>
#include <fcntl.h>
#include <mosquitto.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bridge.h"
#include "log.h"

#define GATE_BUF (256 * 1024)
#define CMD_PUBACK 0x40

struct buf {
	unsigned char data[GATE_BUF];
	size_t len;
};

static int real_fd = -1;  /* TCP socket to the broker (ours) */
static int pair_fd = -1;  /* our end of libmosquitto's socketpair */
static struct buf in_buf; /* broker -> libmosquitto, not yet copied */
/* bytes at the front of in_buf cleared to go to libmosquitto (more than
 * in_buf.len while the rest of a cleared packet is still to come) */
static size_t in_ok;
/* QoS 1 PUBLISH packets of this connection cleared to go to libmosquitto */
static uint64_t fwd_qos1;
static struct buf out_buf;  /* -> broker, not yet sent */
static struct buf from_lib; /* from libmosquitto, an incomplete packet at most */
/* held PUBACKs, a ring */
static unsigned char held_pkt[GATE_HELD_MAX][GATE_PUBACK_MAX];
static unsigned char held_len[GATE_HELD_MAX];
static size_t held_head, held_n;
/* packet ids of the QoS 1 messages handed to on_message, a ring: entry k
 * (mod GATE_HELD_MAX) is the message the k-th PUBACK must answer */
static uint16_t rx_mid[GATE_HELD_MAX];
static uint64_t rx_count, acks_seen, acks_released;
static int broken;
/* why the gate gave up on this connection (a static string), for the log */
static const char *broken_why;

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

void gate_detach(void)
{
	if (real_fd >= 0)
		close(real_fd);
	if (pair_fd >= 0)
		close(pair_fd);
	real_fd = pair_fd = -1;
	in_buf.len = out_buf.len = from_lib.len = 0;
	in_ok = 0;
	fwd_qos1 = 0;
	held_head = held_n = 0;
	rx_count = acks_seen = acks_released = 0;
	broken = 0;
	broken_why = NULL;
}

const char *gate_lost_reason(void)
{
	return broken_why ? broken_why : "not connected";
}

int gate_attach(struct mosquitto *mosq)
{
	int fd = mosquitto_socket(mosq), sp[2];

	gate_detach();
	if (fd < 0)
		return -1;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
		return -1;
	real_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	/* libmosquitto's descriptor number now names its end of the pair; the
	 * TCP connection lives on as real_fd.  Nothing was written yet: the
	 * CONNECT is still queued in libmosquitto (threaded mode). */
	if (real_fd < 0 || set_nonblock(real_fd) < 0 || set_nonblock(sp[0]) < 0 ||
	    set_nonblock(sp[1]) < 0 || dup2(sp[0], fd) < 0) {
		if (real_fd >= 0)
			close(real_fd);
		real_fd = -1;
		close(sp[0]);
		close(sp[1]);
		return -1;
	}
	close(sp[0]);
	return gate_adopt(real_fd, sp[1]);
}

int gate_adopt(int real, int pair)
{
	real_fd = real;
	pair_fd = pair;
	return 0;
}

int gate_real_fd(void)
{
	return real_fd;
}
int gate_pair_fd(void)
{
	return pair_fd;
}

short gate_real_events(void)
{
	return (short)((in_buf.len < GATE_BUF ? POLLIN : 0) | (out_buf.len ? POLLOUT : 0));
}

short gate_pair_events(void)
{
	/* reading from libmosquitto needs room to forward what is not a PUBACK */
	return (short)((out_buf.len < GATE_BUF / 2 ? POLLIN : 0) |
		       (in_ok && in_buf.len ? POLLOUT : 0));
}

void gate_note_message(int mid)
{
	rx_mid[rx_count % GATE_HELD_MAX] = (uint16_t)mid;
	rx_count++;
}

uint64_t gate_received(void)
{
	return rx_count;
}
uint64_t gate_released(void)
{
	return acks_released;
}
size_t gate_held(void)
{
	return held_n;
}

static int append(struct buf *b, const unsigned char *p, size_t n)
{
	if (n > GATE_BUF - b->len)
		return -1;
	memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

static void consume(struct buf *b, size_t n)
{
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
}

/* An MQTT fixed header at p (avail bytes): its size (type byte and
 * remaining length) into *hdr, the remaining length into *rem.  1 when
 * complete, 0 when more bytes are needed, -1 when it is not MQTT (a
 * remaining length of more than 4 bytes). */
static int fixed_header(const unsigned char *p, size_t avail, size_t *hdr, size_t *rem)
{
	size_t n = 1, v = 0, mult = 1;

	for (;;) {
		if (n >= avail)
			return 0;
		v += (size_t)(p[n] & 0x7f) * mult;
		if (!(p[n++] & 0x80))
			break;
		mult *= 128;
		if (n > 4)
			return -1;
	}
	*hdr = n;
	*rem = v;
	return 1;
}

/* Splits from_lib into packets: PUBACKs to the held ring, the rest to
 * out_buf.  -1 (and broken_why) when the stream breaks the rules the gate
 * relies on. */
static int split(void)
{
	size_t off = 0;

	while (off < from_lib.len) {
		const unsigned char *p = from_lib.data + off;
		size_t avail = from_lib.len - off, rem, hdr, total;
		int h = fixed_header(p, avail, &hdr, &rem);

		if (h < 0) {
			broken_why = "libmosquitto wrote a length that is not MQTT";
			return -1;
		}
		if (h == 0)
			goto partial;
		total = hdr + rem;
		if (total > GATE_BUF / 2) {
			/* bigger than anything the bridge publishes */
			broken_why = "libmosquitto wrote a packet over the gate's buffer";
			return -1;
		}
		if (total > avail)
			goto partial;
		if ((p[0] & 0xf0) == CMD_PUBACK) {
			size_t slot;
			uint16_t mid;

			if (total > GATE_PUBACK_MAX || rem < 2) {
				broken_why = "a PUBACK of an unexpected size";
				return -1;
			}
			if (held_n >= GATE_HELD_MAX) {
				broken_why = "more PUBACKs held than the receive maximum";
				return -1;
			}
			if (acks_seen >= rx_count) {
				broken_why = "a PUBACK for a message on_message never saw";
				return -1;
			}
			mid = (uint16_t)(p[hdr] << 8 | p[hdr + 1]);
			if (mid != rx_mid[acks_seen % GATE_HELD_MAX]) {
				log_error("bridge: PUBACK %u does not answer message %llu (id %u)",
					  mid, (unsigned long long)acks_seen,
					  rx_mid[acks_seen % GATE_HELD_MAX]);
				broken_why = "a PUBACK out of the messages' order";
				return -1;
			}
			slot = (held_head + held_n) % GATE_HELD_MAX;
			memcpy(held_pkt[slot], p, total);
			held_len[slot] = (unsigned char)total;
			held_n++;
			acks_seen++;
		} else if (append(&out_buf, p, total) < 0) {
			goto partial; /* out_buf full: the rest waits in from_lib */
		}
		off += total;
	}
partial:
	consume(&from_lib, off);
	return 0;
}

void gate_release(uint64_t upto)
{
	while (held_n && acks_released < upto && out_buf.len + GATE_PUBACK_MAX <= GATE_BUF) {
		append(&out_buf, held_pkt[held_head], held_len[held_head]);
		held_head = (held_head + 1) % GATE_HELD_MAX;
		held_n--;
		acks_released++;
	}
}

/* Clears the packets at the front of in_buf for libmosquitto, in order,
 * up to the first QoS 1 PUBLISH whose PUBACK the held ring could not take:
 * every QoS 1 message libmosquitto reads is answered with a PUBACK that
 * stays here until it is settled, so at most GATE_HELD_MAX of them may be
 * past this point and not released.  The receive maximum should keep the
 * broker below that, but what it sends beyond is held back here (then
 * in_buf fills, the gate stops reading the socket and TCP holds the rest);
 * the rule cannot be left to libmosquitto's reader, whose loop_read reads
 * as many packets as it has publishes of its own in flight, whatever
 * max_packets says.  -1 when the broker's stream is not MQTT. */
static int clear_in(void)
{
	while (in_ok < in_buf.len) {
		const unsigned char *p = in_buf.data + in_ok;
		size_t rem, hdr;
		int h = fixed_header(p, in_buf.len - in_ok, &hdr, &rem);

		if (h < 0) {
			broken_why = "the broker sent a length that is not MQTT";
			return -1;
		}
		if (h == 0)
			return 0;            /* the length is still to come */
		if ((p[0] & 0xf6) == 0x32) { /* PUBLISH, QoS 1 */
			if (fwd_qos1 - acks_released >= GATE_HELD_MAX)
				return 0;
			fwd_qos1++;
		}
		in_ok += hdr + rem;
	}
	return 0;
}

int gate_pump(void)
{
	ssize_t n;
	int lib_closed = 0;

	if (real_fd < 0 || broken)
		return -1;
	/* libmosquitto -> broker first, PUBACKs held: what it wrote before
	 * closing its end (a DISCONNECT) still goes out */
	while (from_lib.len < GATE_BUF && out_buf.len < GATE_BUF / 2) {
		n = read(pair_fd, from_lib.data + from_lib.len, GATE_BUF - from_lib.len);
		if (n > 0) {
			from_lib.len += (size_t)n;
			if (split() < 0)
				goto lost;
			continue;
		}
		if (n == 0 || (errno != EAGAIN && errno != EINTR))
			lib_closed = 1;
		break;
	}
	if (split() < 0)
		goto lost;
	while (out_buf.len) {
		n = send(real_fd, out_buf.data, out_buf.len, MSG_NOSIGNAL);
		if (n > 0) {
			consume(&out_buf, (size_t)n);
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			break;
		broken_why = "the broker's socket refused a write";
		goto lost;
	}
	if (lib_closed) {
		/* libmosquitto closes its socket on an error of its own (a
		 * keepalive, a packet it refused): its reason is in its return
		 * codes, main.c logs those */
		broken_why = "libmosquitto closed its end";
		goto lost;
	}
	/* broker -> libmosquitto */
	while (in_buf.len < GATE_BUF) {
		n = read(real_fd, in_buf.data + in_buf.len, GATE_BUF - in_buf.len);
		if (n > 0) {
			in_buf.len += (size_t)n;
			continue;
		}
		if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
			broken_why = n == 0 ? "the broker closed the connection"
					    : "a read from the broker failed";
			goto lost;
		}
		break;
	}
	if (clear_in() < 0)
		goto lost;
	while (in_ok && in_buf.len) {
		n = send(pair_fd, in_buf.data, in_ok < in_buf.len ? in_ok : in_buf.len,
			 MSG_NOSIGNAL);
		if (n > 0) {
			consume(&in_buf, (size_t)n);
			in_ok -= (size_t)n;
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			break;
		broken_why = "libmosquitto's end refused a write";
		goto lost;
	}
	return 0;
lost:
	broken = 1;
	return -1;
}

int gate_flush(struct mosquitto *mosq)
{
	/* bounded: 100 rounds of at most 50 ms, then the caller sees -1 */
	for (int round = 0; round < 100; round++) {
		struct pollfd p = {.fd = real_fd, .events = POLLOUT};

		while (mosquitto_want_write(mosq))
			if (mosquitto_loop_write(mosq, 1) != MOSQ_ERR_SUCCESS)
				return -1;
		if (gate_pump() < 0)
			return -1;
		if (!out_buf.len && !from_lib.len && !mosquitto_want_write(mosq))
			return 0;
		if (out_buf.len && poll(&p, 1, 50) < 0 && errno != EINTR)
			return -1;
	}
	return -1;
}
