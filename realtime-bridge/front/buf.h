/* buf: a byte buffer that exists only while it holds bytes — what a
 * connection keeps for its client or its edge when a write could not take
 * everything.  NULL is the empty buffer; the owner (conn.c) frees it. */
#ifndef TH_BUF_H
#define TH_BUF_H

#include <stddef.h>
#include <stdint.h>

struct buf {
	uint32_t off, len, cap; /* bytes d[off..len) are pending */
	uint8_t d[];
};

/* Bytes pending (0 for NULL). */
size_t buf_pending(const struct buf *b);

/* Appends p[0..n) to *bp, allocating or growing it (capacity doubles from
 * 1 KiB).  0, or -1 when out of memory (*bp unchanged). */
int buf_append(struct buf **bp, const void *p, size_t n);

/* Writes what *bp holds to the non-blocking fd; frees it and sets *bp to
 * NULL once empty.  0 (all written, or the socket is full), -1 on a write
 * error (errno set). */
int buf_flush(int fd, struct buf **bp);

#endif
