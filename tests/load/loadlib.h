/* loadlib: what the MQTT load generators (th-bridge_load over TCP,
 * th-mqtt_load over WebSocket) share: a clock, a fatal exit, a latency
 * histogram, a growable byte buffer, the credentials file and MQTT 3.1.1
 * packet encoding.  The encoders write whole packets into the caller's
 * memory and send nothing: each program frames and queues them its own way.
 * Linked into those two programs only (see the Makefile), never a program. */
#ifndef LOADLIB_H
#define LOADLIB_H

#include <stddef.h>
#include <stdint.h>

/* name in ll_die()'s messages; set it first thing in main */
extern const char *ll_prog;

/* CLOCK_MONOTONIC in ns */
int64_t ll_now_ns(void);

/* prints "<ll_prog>: m[: strerror(errno)]" and exits 2 */
void ll_die(const char *m) __attribute__((noreturn));

/* latency histogram: 1 us buckets below lim_us (which the owner sets before
 * the first add), then an overflow count.  The buckets are allocated on the
 * first add (dies when out of memory) and held for the process's life. */
struct ll_hist {
	uint32_t *b;
	int64_t lim_us;
	long long n, over;
	int64_t max_us;
};
void ll_hist_add(struct ll_hist *h, int64_t ns);
/* nearest-rank quantile q (0..1) in ms; 0 when empty */
double ll_hist_q(const struct ll_hist *h, double q);

/* growable byte buffer; zero-initialised is empty.  The buffer owns p. */
struct ll_buf {
	unsigned char *p;
	size_t len, cap;
};
/* appends n bytes (dies when out of memory) */
void ll_buf_add(struct ll_buf *b, const void *d, size_t n);
/* drops the first n <= len bytes; an emptied large buffer is freed so that
 * thousands of idle connections do not each keep a burst's worth */
void ll_buf_drop(struct ll_buf *b, size_t n);
/* frees p and empties b */
void ll_buf_free(struct ll_buf *b);

/* one line "uid channel_id token" of a credentials file */
struct ll_cred {
	long long uid, chid;
	char *token;
};
/* reads every well-formed line of path; dies if it cannot be read or holds
 * none.  The array and its tokens are the caller's (held for the run). */
struct ll_cred *ll_creds_load(const char *path, size_t *n);

/* ---- MQTT 3.1.1 encoding: each returns the packet's length, 0 if it does
 * not fit in cap bytes ---- */
/* CONNECT, clean session; user and pass when pass is non-NULL */
size_t ll_mqtt_connect(unsigned char *out, size_t cap, const char *cid, const char *user,
		       const char *pass, unsigned keepalive);
/* SUBSCRIBE with packet id 1 to one filter at qos */
size_t ll_mqtt_subscribe(unsigned char *out, size_t cap, const char *filter, unsigned qos);
/* PUBLISH at qos (0 or 1; pid is used for 1 only) */
size_t ll_mqtt_publish(unsigned char *out, size_t cap, const char *topic, unsigned qos,
		       unsigned pid, const void *payload, size_t n);
/* PUBACK for pid: always 4 bytes */
size_t ll_mqtt_puback(unsigned char out[4], unsigned pid);

/* splits the packet at the start of p[0..n): 1 and *hdr (fixed header
 * bytes), *rl (remaining length) when it is all there, 0 when more bytes are
 * needed, -1 when the remaining length is malformed (over 4 bytes) */
int ll_mqtt_split(const unsigned char *p, size_t n, size_t *hdr, size_t *rl);

/* The header of the WebSocket frame at the start of p[0..n): 1 and *op
 * (opcode), *masked, *hdr (header bytes, a mask key included) and *len
 * (payload bytes, as announced: the caller bounds it) when the header is
 * there (the payload may not be yet), 0 when more bytes are needed. */
int ll_ws_frame(const unsigned char *p, size_t n, int *op, int *masked, size_t *hdr, uint64_t *len);

#endif
