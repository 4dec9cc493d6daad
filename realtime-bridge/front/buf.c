/* buf: see buf.h. */
#include "buf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

size_t buf_pending(const struct buf *b)
{
	return b ? b->len - b->off : 0;
}

int buf_append(struct buf **bp, const void *p, size_t n)
{
	struct buf *b = *bp;

	if (n == 0)
		return 0;
	if (b && b->off && b->off == b->len)
		b->off = b->len = 0;
	if (!b || b->cap - b->len < n) {
		size_t used = buf_pending(b), cap = b ? b->cap : 0, need = used + n;
		struct buf *nb;

		if (need > UINT32_MAX / 2)
			return -1;
		/* what was written moves out first: room at the end may suffice */
		if (b && b->off) {
			memmove(b->d, b->d + b->off, used);
			b->off = 0;
			b->len = (uint32_t)used;
		}
		if (!b || cap < need) {
			cap = cap ? cap : 1024;
			while (cap < need)
				cap *= 2;
			nb = realloc(b, sizeof(*nb) + cap);
			if (!nb)
				return -1;
			if (!b)
				nb->off = nb->len = 0;
			nb->cap = (uint32_t)cap;
			b = nb;
			*bp = b;
		}
	}
	memcpy(b->d + b->len, p, n);
	b->len += (uint32_t)n;
	return 0;
}

int buf_flush(int fd, struct buf **bp)
{
	struct buf *b = *bp;

	while (b && b->off < b->len) {
		ssize_t w = write(fd, b->d + b->off, b->len - b->off);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return 0;
			return -1;
		}
		b->off += (uint32_t)w;
	}
	free(b);
	*bp = NULL;
	return 0;
}
