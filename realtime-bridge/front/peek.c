/* peek: see peek.h. */
#include "peek.h"

#include <string.h>

int peek_varint(const uint8_t *b, size_t n, uint32_t *value)
{
	uint32_t v = 0;
	size_t i;

	for (i = 0; i < n && i < 4; i++) {
		v |= (uint32_t)(b[i] & 0x7f) << (7 * i);
		if (!(b[i] & 0x80)) {
			*value = v;
			return (int)i + 1;
		}
	}
	return i == 4 ? -1 : 0;
}

enum peek_err peek_feed(struct peek *p, const uint8_t *in, size_t n, uint32_t max, uint8_t *out,
			size_t *outn)
{
	size_t i = 0, o = 0;
	enum peek_err e = PEEK_OK;

	while (i < n) {
		if (p->left == 0) {
			uint32_t rl;
			int r;

			p->hdr[p->hlen++] = in[i++];
			if (p->hlen < 2)
				continue;
			r = peek_varint(p->hdr + 1, p->hlen - 1u, &rl);
			if (r < 0) {
				e = PEEK_MALFORMED;
				goto out;
			}
			if (r == 0)
				continue;
			/* CONNECT: type 1, flags 0 (3.1.1 and 5 alike) */
			if (!p->first_done && p->hdr[0] != 0x10) {
				e = PEEK_NOT_CONNECT;
				goto out;
			}
			if ((uint64_t)p->hlen + rl > max) {
				e = PEEK_TOO_BIG;
				goto out;
			}
			memcpy(out + o, p->hdr, p->hlen);
			o += p->hlen;
			if (!p->first_done) {
				p->in_first = 1;
				p->connect_len = p->hlen + rl;
			}
			p->hlen = 0;
			p->left = rl;
		} else {
			size_t k = n - i < p->left ? n - i : p->left;

			memcpy(out + o, in + i, k);
			o += k;
			i += k;
			p->left -= (uint32_t)k;
		}
		if (p->left == 0 && p->hlen == 0 && p->in_first) {
			p->in_first = 0;
			p->first_done = 1;
		}
	}
out:
	*outn = o;
	return e;
}
