/* wsf: see wsf.h. */
#include "wsf.h"

#include <stdlib.h>
#include <string.h>

void wsf_reset(struct wsf *w)
{
	free(w->ctl);
	memset(w, 0, sizeof(*w));
}

int wsf_close_code(enum wsf_err e)
{
	switch (e) {
	case WSF_PROTOCOL:
		return 1002;
	case WSF_NOT_BINARY:
		return 1003;
	case WSF_TOO_BIG:
		return 1009;
	default:
		return 1011;
	}
}

/* bytes of the header once its second byte is known: 2 + extended length + mask */
static unsigned header_size(const uint8_t *hdr)
{
	unsigned l = hdr[1] & 0x7f;

	return 2 + (l == 126 ? 2 : l == 127 ? 8 : 0) + ((hdr[1] & 0x80) ? 4 : 0);
}

/* the complete header in w->hdr: checks it and enters the payload */
static enum wsf_err header_done(struct wsf *w, const struct wsf_cb *cb)
{
	uint8_t b0 = w->hdr[0], b1 = w->hdr[1];
	unsigned l7 = b1 & 0x7f, i;
	uint64_t len = l7;
	int fin = b0 >> 7, op = b0 & 0x0f;

	if (b0 & 0x70)
		return WSF_PROTOCOL; /* no extension was negotiated */
	if (!(b1 & 0x80))
		return WSF_PROTOCOL; /* a client masks every frame */
	if (l7 == 126) {
		len = (uint64_t)w->hdr[2] << 8 | w->hdr[3];
	} else if (l7 == 127) {
		len = 0;
		for (i = 0; i < 8; i++)
			len = len << 8 | w->hdr[2 + i];
		if (len >> 63)
			return WSF_PROTOCOL;
	}
	switch (op) {
	case WSF_TEXT:
		return WSF_NOT_BINARY;
	case WSF_BINARY:
		if (w->msg_op)
			return WSF_PROTOCOL; /* a new message inside an open one */
		w->msg_op = fin ? 0 : WSF_BINARY;
		break;
	case WSF_CONT:
		if (!w->msg_op)
			return WSF_PROTOCOL;
		if (fin)
			w->msg_op = 0;
		break;
	case WSF_CLOSE:
	case WSF_PING:
	case WSF_PONG:
		if (!fin || len > 125)
			return WSF_PROTOCOL;
		break;
	default:
		return WSF_PROTOCOL;
	}
	if (op < WSF_CLOSE && len > cb->max_frame)
		return WSF_TOO_BIG;
	w->op = (uint8_t)op;
	w->left = len;
	w->mpos = 0;
	w->in_payload = 1;
	w->ctl_len = 0;
	return WSF_OK;
}

static enum wsf_err frame_end(struct wsf *w, const struct wsf_cb *cb)
{
	enum wsf_err e = WSF_OK;

	if (w->op >= WSF_CLOSE) {
		if (cb->on_control(cb->user, w->op, w->ctl, w->ctl_len) < 0)
			e = WSF_STOP;
		free(w->ctl);
		w->ctl = NULL;
		w->ctl_len = 0;
	}
	w->in_payload = 0;
	w->hlen = 0;
	return e;
}

enum wsf_err wsf_feed(struct wsf *w, uint8_t *in, size_t n, const struct wsf_cb *cb)
{
	size_t i = 0;
	enum wsf_err e;

	while (i < n) {
		if (!w->in_payload) {
			w->hdr[w->hlen++] = in[i++];
			if (w->hlen < 2 || w->hlen < header_size(w->hdr))
				continue;
			e = header_done(w, cb);
			if (e != WSF_OK)
				return e;
			if (w->left == 0 && (e = frame_end(w, cb)) != WSF_OK)
				return e;
			continue;
		}
		{
			const uint8_t *mask = w->hdr + header_size(w->hdr) - 4;
			size_t k = n - i < w->left ? n - i : (size_t)w->left, j;
			uint8_t *p = in + i;

			for (j = 0; j < k; j++)
				p[j] ^= mask[(w->mpos + j) & 3];
			w->mpos = (uint8_t)((w->mpos + k) & 3);
			w->left -= k;
			i += k;
			if (w->op >= WSF_CLOSE) {
				if (!w->ctl && !(w->ctl = malloc(125)))
					return WSF_NOMEM;
				memcpy(w->ctl + w->ctl_len, p,
				       k); /* header_done bounded it to 125 */
				w->ctl_len = (uint8_t)(w->ctl_len + k);
			} else if (k && cb->on_data(cb->user, p, k) < 0) {
				return WSF_STOP;
			}
			if (w->left == 0 && (e = frame_end(w, cb)) != WSF_OK)
				return e;
		}
	}
	return WSF_OK;
}
