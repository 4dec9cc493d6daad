/* router: segment-by-segment matching of a path against patterns. */
#include "router.h"

#include <stdio.h>
#include <string.h>

/* Next segment of s after the leading '/'; sets *len; returns NULL at end. */
static const char *segment(const char *s, size_t *len)
{
	const char *end;

	if (*s != '/')
		return NULL;
	s++;
	end = strchr(s, '/');
	*len = end ? (size_t)(end - s) : strlen(s);
	return s;
}

/* 1 when path fits pattern; fills the parameters of m. */
static int pattern_match(const char *pattern, const char *path, struct route_match *m)
{
	const char *p = pattern, *q = path;
	size_t plen, qlen;
	int np = 0;

	for (;;) {
		const char *ps = segment(p, &plen);
		const char *qs = segment(q, &qlen);

		if (!ps || !qs)
			return !ps && !qs;
		if (ps[0] == ':') {
			if (qlen == 0 || np >= HTTP_MAX_PARAMS)
				return 0;
			m->param_names[np] = ps + 1;
			m->param_name_lens[np] = plen - 1;
			m->params[np] = qs;
			m->param_lens[np] = qlen;
			np++;
		} else if (plen != qlen || memcmp(ps, qs, plen) != 0) {
			return 0;
		}
		p = ps + plen;
		q = qs + qlen;
		m->nparams = np;
		if (!*p && !*q)
			return 1;
	}
}

static void allow_add(char *allow, size_t size, const char *method)
{
	size_t n = strlen(allow), mlen = strlen(method);
	const char *hit = strstr(allow, method);

	/* already listed? ("GET" must not match inside another name) */
	while (hit) {
		if ((hit == allow || hit[-1] == ' ') && (hit[mlen] == ',' || hit[mlen] == '\0'))
			return;
		hit = strstr(hit + 1, method);
	}
	if (n + mlen + 3 > size)
		return;
	snprintf(allow + n, size - n, "%s%s", n ? ", " : "", method);
}

enum router_result router_match(const struct route *table, size_t n, const char *method,
				const char *path, int with_test, struct route_match *m)
{
	struct route_match tmp;
	size_t i;
	int path_known = 0;

	memset(m, 0, sizeof(*m));
	if (strlen(path) > HTTP_PATH_MAX)
		return ROUTER_NOT_FOUND;
	for (i = 0; i < n; i++) {
		const struct route *r = &table[i];

		if ((r->flags & ROUTE_TEST) && !with_test)
			continue;
		memset(&tmp, 0, sizeof(tmp));
		if (!pattern_match(r->pattern, path, &tmp))
			continue;
		if (strcmp(r->method, method) == 0) {
			memcpy(m, &tmp, sizeof(tmp));
			m->route = r;
			m->index = i;
			m->allow[0] = '\0';
			return ROUTER_FOUND;
		}
		path_known = 1;
		allow_add(m->allow, sizeof(m->allow), r->method);
	}
	return path_known ? ROUTER_METHOD_NOT_ALLOWED : ROUTER_NOT_FOUND;
}

int router_validate(const struct route *table, size_t n, char *err, size_t errsize)
{
	size_t i, j;

	for (i = 0; i < n; i++) {
		const struct route *r = &table[i];
		const char *s;
		size_t len;
		int np = 0;

		if (!r->method || !r->pattern || !r->handler || r->pattern[0] != '/') {
			snprintf(err, errsize, "route %zu: incomplete or pattern without '/'", i);
			return -1;
		}
		for (s = r->pattern; (s = segment(s, &len)) != NULL; s += len) {
			if (s[0] == ':' && (len < 2 || ++np > HTTP_MAX_PARAMS)) {
				snprintf(err, errsize, "route %s %s: bad parameter", r->method,
					 r->pattern);
				return -1;
			}
			if (!s[len])
				break;
		}
		for (j = 0; j < i; j++) {
			if (strcmp(table[j].method, r->method) == 0 &&
			    strcmp(table[j].pattern, r->pattern) == 0) {
				snprintf(err, errsize, "route %s %s: declared twice", r->method,
					 r->pattern);
				return -1;
			}
		}
	}
	return 0;
}
