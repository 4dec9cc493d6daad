/* loadlib: shared parts of the MQTT load generators (contracts in loadlib.h) */
#include "loadlib.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *ll_prog = "th-load";

int64_t ll_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void ll_die(const char *m)
{
	fprintf(stderr, "%s: %s%s%s\n", ll_prog, m, errno ? ": " : "",
		errno ? strerror(errno) : "");
	exit(2);
}

void ll_hist_add(struct ll_hist *h, int64_t ns)
{
	int64_t us = ns / 1000;

	if (us < 0)
		us = 0;
	if (h->lim_us <= 0)
		ll_die("histogram without a limit");
	if (!h->b && !(h->b = calloc((size_t)h->lim_us, sizeof(*h->b))))
		ll_die("out of memory");
	if (us >= h->lim_us)
		h->over++;
	else
		h->b[us]++;
	if (us > h->max_us)
		h->max_us = us;
	h->n++;
}

double ll_hist_q(const struct ll_hist *h, double q)
{
	long long want, acc = 0;

	if (!h->n || !h->b)
		return 0;
	want = (long long)(q * (double)h->n);
	if ((double)want < q * (double)h->n)
		want++;
	if (want < 1)
		want = 1;
	for (int64_t i = 0; i < h->lim_us; i++) {
		acc += h->b[i];
		if (acc >= want)
			return (double)i / 1000.0;
	}
	return (double)h->max_us / 1000.0;
}

void ll_buf_add(struct ll_buf *b, const void *d, size_t n)
{
	if (b->len + n > b->cap) {
		size_t c = b->cap ? b->cap : 256;

		while (c < b->len + n)
			c *= 2;
		if (!(b->p = realloc(b->p, c)))
			ll_die("out of memory");
		b->cap = c;
	}
	memcpy(b->p + b->len, d, n);
	b->len += n;
}

void ll_buf_drop(struct ll_buf *b, size_t n)
{
	memmove(b->p, b->p + n, b->len - n);
	b->len -= n;
	if (!b->len && b->cap > 4096)
		ll_buf_free(b);
}

void ll_buf_free(struct ll_buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

struct ll_cred *ll_creds_load(const char *path, size_t *n)
{
	FILE *f = fopen(path, "r");
	char line[8192];
	struct ll_cred *cr = NULL;
	size_t cap = 0;

	*n = 0;
	if (!f)
		ll_die("cannot open the credentials file");
	while (fgets(line, sizeof(line), f)) {
		char tok[8000];
		long long u, c;

		if (sscanf(line, "%lld %lld %7999s", &u, &c, tok) != 3)
			continue;
		if (*n == cap) {
			cap = cap ? cap * 2 : 64;
			if (!(cr = realloc(cr, cap * sizeof(*cr))))
				ll_die("out of memory");
		}
		cr[*n].uid = u;
		cr[*n].chid = c;
		if (!(cr[*n].token = strdup(tok)))
			ll_die("out of memory");
		(*n)++;
	}
	fclose(f);
	if (!*n)
		ll_die("no credentials");
	return cr;
}

/* ---- MQTT 3.1.1 ---------------------------------------------------------- */
static size_t put_len(unsigned char *p, size_t n)
{
	size_t k = 0;

	do {
		unsigned char c = n % 128;

		n /= 128;
		p[k++] = (unsigned char)(c | (n ? 0x80 : 0));
	} while (n);
	return k;
}

static size_t put_str(unsigned char *p, const char *s, size_t n)
{
	p[0] = (unsigned char)(n >> 8);
	p[1] = (unsigned char)n;
	memcpy(p + 2, s, n);
	return n + 2;
}

/* 5: the fixed header's most (type and a 4-byte remaining length) */
static int fits(size_t body, size_t cap)
{
	return body <= 268435455 && body + 5 <= cap;
}

size_t ll_mqtt_connect(unsigned char *out, size_t cap, const char *cid, const char *user,
		       const char *pass, unsigned keepalive)
{
	size_t cl = strlen(cid), ul = pass ? strlen(user) : 0, pl = pass ? strlen(pass) : 0;
	size_t body = 10 + 2 + cl + (pass ? 2 + ul + 2 + pl : 0), k = 0;

	if (!fits(body, cap) || cl > 65535 || ul > 65535 || pl > 65535)
		return 0;
	out[k++] = 0x10;
	k += put_len(out + k, body);
	k += put_str(out + k, "MQTT", 4);
	out[k++] = 4;
	out[k++] = pass ? 0x80 | 0x40 | 0x02 : 0x02; /* username, password; clean session */
	out[k++] = (unsigned char)(keepalive >> 8);
	out[k++] = (unsigned char)keepalive;
	k += put_str(out + k, cid, cl);
	if (pass) {
		k += put_str(out + k, user, ul);
		k += put_str(out + k, pass, pl);
	}
	return k;
}

size_t ll_mqtt_subscribe(unsigned char *out, size_t cap, const char *filter, unsigned qos)
{
	size_t fl = strlen(filter), k = 0;

	if (!fits(2 + 2 + fl + 1, cap) || fl > 65535)
		return 0;
	out[k++] = 0x82;
	k += put_len(out + k, 2 + 2 + fl + 1);
	out[k++] = 0;
	out[k++] = 1;
	k += put_str(out + k, filter, fl);
	out[k++] = (unsigned char)qos;
	return k;
}

size_t ll_mqtt_publish(unsigned char *out, size_t cap, const char *topic, unsigned qos,
		       unsigned pid, const void *payload, size_t n)
{
	size_t tl = strlen(topic), body = 2 + tl + (qos ? 2 : 0) + n, k = 0;

	if (!fits(body, cap) || tl > 65535)
		return 0;
	out[k++] = (unsigned char)(0x30 | (qos << 1));
	k += put_len(out + k, body);
	k += put_str(out + k, topic, tl);
	if (qos) {
		out[k++] = (unsigned char)(pid >> 8);
		out[k++] = (unsigned char)pid;
	}
	memcpy(out + k, payload, n);
	return k + n;
}

size_t ll_mqtt_puback(unsigned char out[4], unsigned pid)
{
	out[0] = 0x40;
	out[1] = 2;
	out[2] = (unsigned char)(pid >> 8);
	out[3] = (unsigned char)pid;
	return 4;
}

int ll_mqtt_split(const unsigned char *p, size_t n, size_t *hdr, size_t *rl)
{
	size_t k = 1, len = 0, mul = 1;

	if (n < 2)
		return 0;
	for (;;) {
		if (k >= n)
			return 0;
		len += (p[k] & 127u) * mul;
		mul *= 128;
		if (!(p[k++] & 128))
			break;
		if (k > 4)
			return -1;
	}
	if (n < k + len)
		return 0;
	*hdr = k;
	*rl = len;
	return 1;
}

int ll_ws_frame(const unsigned char *p, size_t n, int *op, int *masked, size_t *hdr, uint64_t *len)
{
	uint64_t m;
	size_t h = 2;

	if (n < 2)
		return 0;
	m = p[1] & 127u;
	if (m == 126) {
		if (n < 4)
			return 0;
		m = (uint64_t)p[2] << 8 | p[3];
		h = 4;
	} else if (m == 127) {
		if (n < 10)
			return 0;
		m = 0;
		for (int i = 0; i < 8; i++)
			m = m << 8 | p[2 + i];
		h = 10;
	}
	if (p[1] & 128)
		h += 4;
	*op = p[0] & 15;
	*masked = !!(p[1] & 128);
	*hdr = h;
	*len = m;
	return n >= h;
}
