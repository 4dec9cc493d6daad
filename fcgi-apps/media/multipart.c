/* multipart: a streaming parser for multipart/form-data (RFC 7578, 2046).
 *
 * The body is fed in chunks of any size; the bytes of the part named `file`
 * go to a callback as they arrive, so memory does not grow with the file.
 * The stream is matched against "\r\n--boundary" with the body's first
 * delimiter, which has no CRLF before it, handled by starting the match as if
 * CRLF had been seen.  A boundary holds no CR (RFC 2046 bchars), so '\r'
 * appears only at the delimiter's first byte: on a mismatch, the bytes held
 * as a partial match cannot start another match and are data. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "media.h"

int mp_boundary(const char *ct, char *out, size_t outsize)
{
	const char *p, *end;
	size_t n;

	if (!ct || strncasecmp(ct, "multipart/form-data", 19) != 0)
		return -1;
	p = strcasestr(ct, "boundary=");
	if (!p)
		return -1;
	p += 9;
	if (*p == '"') {
		end = strchr(++p, '"');
		if (!end)
			return -1;
	} else {
		end = p + strcspn(p, "; \t");
	}
	n = (size_t)(end - p);
	if (n < 1 || n > 70 || n >= outsize || memchr(p, '\r', n) || memchr(p, '\n', n))
		return -1;
	memcpy(out, p, n);
	out[n] = '\0';
	return 0;
}

void mp_init(struct mp *p, const char *boundary, mp_data_fn on_file, void *ctx)
{
	memset(p, 0, sizeof(*p));
	p->dlen = (size_t)snprintf(p->delim, sizeof(p->delim), "\r\n--%s", boundary);
	p->match = 2; /* the first delimiter may open the body: CRLF assumed */
	p->state = MP_PREAMBLE;
	p->on_file = on_file;
	p->ctx = ctx;
}

static int fail(struct mp *p, const char *why)
{
	p->state = MP_ERROR;
	p->error = why;
	return -1;
}

/* A parameter's value in a header line ("name", "filename"), unquoted, into
 * out.  1 when found. */
static int header_param(const char *line, const char *name, char *out, size_t outsize)
{
	size_t nl = strlen(name), n = 0;
	const char *s = line;

	while ((s = strcasestr(s, name)) != NULL) {
		/* a whole parameter name: after ';' or space, followed by '=' */
		if ((s == line || s[-1] == ';' || s[-1] == ' ' || s[-1] == '\t') && s[nl] == '=')
			break;
		s += nl;
	}
	if (!s)
		return 0;
	s += nl + 1;
	if (*s == '"') {
		for (s++; *s && *s != '"' && n + 1 < outsize; s++) {
			if (*s == '\\' && s[1])
				s++;
			out[n++] = *s;
		}
	} else {
		for (; *s && *s != ';' && *s != ' ' && *s != '\r' && n + 1 < outsize; s++)
			out[n++] = *s;
	}
	out[n] = '\0';
	return 1;
}

/* The header block of a part is complete in p->hdr: is it the `file` part? */
static void part_begin(struct mp *p)
{
	char name[64];
	const char *line = p->hdr;

	p->hdr[p->hlen] = '\0';
	p->in_file = 0;
	while (line && *line) {
		if (strncasecmp(line, "Content-Disposition:", 20) == 0) {
			const char *eol = strstr(line, "\r\n");
			char save = 0;

			if (eol) {
				save = *eol;
				*(char *)eol = '\0';
			}
			if (header_param(line, "name", name, sizeof(name)) &&
			    strcmp(name, "file") == 0 && !p->saw_file) {
				p->in_file = 1;
				p->filename[0] = '\0';
				header_param(line, "filename", p->filename, sizeof(p->filename));
			}
			if (eol)
				*(char *)eol = save;
		}
		line = strstr(line, "\r\n");
		if (line)
			line += 2;
	}
}

static int emit(struct mp *p, const char *buf, size_t n)
{
	if (n == 0 || p->state != MP_BODY || !p->in_file)
		return 0;
	if (p->on_file(p->ctx, buf, n) < 0)
		return fail(p, "cannot store the upload");
	return 0;
}

/* The delimiter matched: end the current part. */
static void delim_seen(struct mp *p)
{
	if (p->state == MP_BODY && p->in_file)
		p->saw_file = 1;
	p->in_file = 0;
	p->state = MP_AFTER_DELIM;
	p->nafter = 0;
	p->match = 0;
}

int mp_feed(struct mp *p, const char *buf, size_t n)
{
	size_t i = 0;

	while (i < n) {
		switch (p->state) {
		case MP_PREAMBLE:
		case MP_BODY: {
			/* no partial match: jump to the next CR, the rest is data */
			if (p->match == 0) {
				const char *cr = memchr(buf + i, '\r', n - i);
				size_t run = cr ? (size_t)(cr - (buf + i)) : n - i;

				if (emit(p, buf + i, run) < 0)
					return -1;
				i += run;
				if (!cr)
					break;
			}
			if (buf[i] == p->delim[p->match]) {
				p->match++;
				i++;
				if (p->match == p->dlen)
					delim_seen(p);
			} else if (p->match > 0) {
				/* the held bytes were data; re-examine buf[i] afresh */
				size_t held = p->match;

				p->match = 0;
				if (p->state == MP_BODY && emit(p, p->delim, held) < 0)
					return -1;
			} else {
				/* a CR that starts no delimiter */
				if (emit(p, buf + i, 1) < 0)
					return -1;
				i++;
			}
			break;
		}
		case MP_AFTER_DELIM:
			p->after[p->nafter++] = buf[i++];
			if (p->nafter < 2)
				break;
			if (p->after[0] == '-' && p->after[1] == '-') {
				p->state = MP_DONE;
			} else if (p->after[0] == '\r' && p->after[1] == '\n') {
				p->state = MP_HEADERS;
				p->hlen = 0;
			} else {
				return fail(p, "malformed multipart delimiter");
			}
			break;
		case MP_HEADERS:
			if (p->hlen + 1 >= sizeof(p->hdr))
				return fail(p, "multipart part headers too long");
			p->hdr[p->hlen++] = buf[i++];
			if (p->hlen == 2 && memcmp(p->hdr, "\r\n", 2) == 0) {
				p->hlen = 0; /* a part without headers */
				part_begin(p);
				p->state = MP_BODY;
			} else if (p->hlen >= 4 &&
				   memcmp(p->hdr + p->hlen - 4, "\r\n\r\n", 4) == 0) {
				part_begin(p);
				p->state = MP_BODY;
			}
			break;
		case MP_DONE:
			return 0; /* the epilogue is ignored */
		case MP_ERROR:
			return -1;
		}
	}
	return 0;
}

int mp_finish(struct mp *p)
{
	if (p->state == MP_ERROR)
		return -1;
	if (p->state != MP_DONE) {
		fail(p, "multipart body ends before its closing delimiter");
		return -1;
	}
	if (!p->saw_file) {
		fail(p, "multipart body has no part named file");
		return -1;
	}
	return 0;
}
