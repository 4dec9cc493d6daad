/* peek: the framer of the MQTT byte stream a client sends to its broker.
 * It reads every packet's fixed header (type byte and remaining length,
 * MQTT 3.1.1/5 section 2.2) and lets the bytes through only once the length
 * is known to be within the limit: a packet over it never reaches the
 * broker (Mosquitto 2.0.11 allocates what a WebSocket client announces).
 * The first packet must be a CONNECT.  State: 16 bytes, no heap. */
#ifndef TH_PEEK_H
#define TH_PEEK_H

#include <stddef.h>
#include <stdint.h>

enum peek_err {
	PEEK_OK = 0,
	PEEK_TOO_BIG,     /* a packet over the limit */
	PEEK_MALFORMED,   /* a remaining length over 4 bytes */
	PEEK_NOT_CONNECT, /* the first packet is something else */
};

struct peek {
	uint32_t left;        /* bytes of the current packet still to pass */
	uint32_t connect_len; /* bytes of the CONNECT, once it passed whole */
	uint8_t hdr[5];
	uint8_t hlen;       /* header bytes held back */
	uint8_t first_done; /* the CONNECT passed whole */
	uint8_t in_first;   /* the CONNECT is passing */
};

/* The remaining length in b[0..n) (the bytes after the type byte).
 * Returns its byte count (1..4) and *value, 0 when more bytes are needed,
 * -1 when malformed (a fifth byte). */
int peek_varint(const uint8_t *b, size_t n, uint32_t *value);

/* Passes in[0..n) into out (capacity n + 5: held header bytes join),
 * *outn the bytes to forward.  max: the largest packet, fixed header
 * included.  On error nothing of the offending packet is in out beyond
 * what came before it. */
enum peek_err peek_feed(struct peek *p, const uint8_t *in, size_t n, uint32_t max, uint8_t *out,
			size_t *outn);

#endif
