/* wsf: the decoder of the WebSocket frames a client sends (RFC 6455 5.2),
 * a push parser whose state between reads is 24 bytes, so an idle
 * connection costs nothing more.  (wslay's contexts carry a 4 KiB input
 * buffer each; the front sends its own frames with wslay, see conn.c.)
 *
 * Data payloads are unmasked in place and handed to on_data as they arrive
 * (an MQTT stream does not care where frames end); a control frame's
 * payload (at most 125 bytes) is collected, in a heap block that exists only
 * while such a frame is incomplete, and handed whole to on_control. */
#ifndef TH_WSF_H
#define TH_WSF_H

#include <stddef.h>
#include <stdint.h>

enum wsf_op {
	WSF_CONT = 0,
	WSF_TEXT = 1,
	WSF_BINARY = 2,
	WSF_CLOSE = 8,
	WSF_PING = 9,
	WSF_PONG = 10
};

/* results of wsf_feed, and the close code each maps to (wsf_close_code) */
enum wsf_err {
	WSF_OK = 0,
	WSF_PROTOCOL,   /* 1002: unmasked, RSV bits, bad opcode, bad continuation, long control */
	WSF_NOT_BINARY, /* 1003: a text frame */
	WSF_TOO_BIG,    /* 1009: a frame over the limit */
	WSF_STOP,       /* a callback asked to stop (its own reason) */
	WSF_NOMEM,
};

struct wsf {
	uint64_t left;   /* payload bytes left in the current frame */
	uint8_t *ctl;    /* a control frame's payload so far (heap, only while incomplete) */
	uint8_t hdr[14]; /* header bytes so far */
	uint8_t hlen;    /* 0: between frames */
	uint8_t op;      /* opcode of the current frame */
	uint8_t msg_op;  /* WSF_BINARY while a fragmented message is open, else 0 */
	uint8_t mpos;    /* position in the mask of the next payload byte */
	uint8_t ctl_len;
	uint8_t in_payload;
};

struct wsf_cb {
	void *user;
	uint64_t max_frame; /* payload bytes of one frame */
	/* unmasked data bytes; return 0, or -1 to stop (WSF_STOP) */
	int (*on_data)(void *user, const uint8_t *p, size_t n);
	/* a whole control frame (CLOSE, PING, PONG); return 0 or -1 (WSF_STOP) */
	int (*on_control)(void *user, int op, const uint8_t *p, size_t n);
};

/* Decodes in[0..n), unmasking it in place.  After an error the state is
 * undefined: the connection is to be closed. */
enum wsf_err wsf_feed(struct wsf *w, uint8_t *in, size_t n, const struct wsf_cb *cb);

/* The close status for an error (1002, 1003, 1009, 1011). */
int wsf_close_code(enum wsf_err e);

/* Frees what the state holds (the partial control frame). */
void wsf_reset(struct wsf *w);

#endif
