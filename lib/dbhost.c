/* dbhost: the host names of a conninfo resolved within the connect's time
 * bound, before libpq sees them.
 *
 * libpq resolves host names with getaddrinfo(), which waits as long as
 * /etc/resolv.conf lets it (10 s a name with glibc's defaults) when the DNS
 * server does not answer, and connect_timeout does not cover that wait: a
 * worker would hang on a silent resolver.  So each connect resolves the
 * names itself (lib/resolve: getaddrinfo_a, bounded) and passes the numeric
 * addresses as `hostaddr` beside `host` (libpq then does no lookup, and TLS
 * and the passfile still see the name).  A name that does not resolve in
 * time is left out of the list, with its port; when none is left, the
 * connect fails at once.  Each connect resolves again: a failover that moves
 * a name to another address is followed. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dbpriv.h"
#include "mono.h"
#include "resolve.h"

#define DBHOST_MAX 16 /* hosts in one conninfo */

void dbhost_free(struct dbhost *d)
{
	free(d->kw);
	free(d->val);
	free(d->buf);
	memset(d, 0, sizeof(*d));
}

static int is_numeric(const char *h)
{
	unsigned char a[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, h, a) == 1 || inet_pton(AF_INET6, h, a) == 1;
}

/* The index of kw in p, or -1. */
static int find(const struct db_params *p, const char *kw)
{
	for (int i = 0; p->kw[i]; i++)
		if (strcmp(p->kw[i], kw) == 0)
			return i;
	return -1;
}

/* Splits s (a comma-separated libpq list) into at most max pieces in buf
 * (a copy); returns the count. */
static int split(const char *s, char *buf, size_t size, char **out, int max)
{
	int n = 0;
	char *save = NULL, *tok;

	snprintf(buf, size, "%s", s);
	/* strtok_r skips empty pieces: libpq's lists have none worth keeping */
	for (tok = strtok_r(buf, ",", &save); tok && n < max; tok = strtok_r(NULL, ",", &save))
		out[n++] = tok;
	return n;
}

int dbhost_resolve(const struct db_params *p, long budget_ms, struct dbhost *d, char *why,
		   size_t whylen)
{
	char *hosts[DBHOST_MAX], *ports[DBHOST_MAX];
	char hostbuf[1024], portbuf[256], addr[DBHOST_MAX][64];
	int ih = find(p, "host"), ip = find(p, "port"), nh, np = 0, kept = 0, named = 0;
	long long deadline = (long long)mono_ms() + budget_ms;
	size_t n = 0, used = 0, cap;
	char *hs, *as, *ps;

	memset(d, 0, sizeof(*d));
	why[0] = '\0';
	/* no host, or hostaddr given by the operator: libpq as configured */
	if (ih < 0 || find(p, "hostaddr") >= 0)
		return 0;
	nh = split(p->val[ih], hostbuf, sizeof(hostbuf), hosts, DBHOST_MAX);
	if (ip >= 0)
		np = split(p->val[ip], portbuf, sizeof(portbuf), ports, DBHOST_MAX);
	for (int i = 0; i < nh; i++) {
		if (hosts[i][0] == '/' || is_numeric(hosts[i]))
			continue;
		named++;
	}
	if (named == 0)
		return 0; /* sockets and addresses: no lookup to bound */
	while (p->kw[n])
		n++;
	d->kw = calloc(n + 2, sizeof(*d->kw));
	d->val = calloc(n + 2, sizeof(*d->val));
	cap = 3 * (sizeof(hostbuf) + sizeof(addr) + sizeof(portbuf));
	d->buf = malloc(cap);
	if (!d->kw || !d->val || !d->buf) {
		dbhost_free(d);
		snprintf(why, whylen, "out of memory");
		return -1;
	}
	hs = d->buf;
	hs[0] = '\0';
	for (int i = 0; i < nh; i++) {
		long left = (long)(deadline - (long long)mono_ms());
		char err[128];

		addr[i][0] = '\0';
		if (hosts[i][0] != '/' && !is_numeric(hosts[i]) &&
		    resolve_host(hosts[i], left > 0 ? left : 1, addr[i], sizeof(addr[i]), err,
				 sizeof(err)) < 0) {
			/* left out: the next host of the list is tried instead */
			snprintf(why + strlen(why), whylen - strlen(why), "%s%s: %s",
				 why[0] ? "; " : "", hosts[i], err);
			hosts[i] = NULL;
			continue;
		}
		kept++;
	}
	if (kept == 0) {
		dbhost_free(d);
		return -1;
	}
	/* host, hostaddr and (when it is a list) port, of the hosts kept */
	as = hs + sizeof(hostbuf) + 1;
	ps = as + sizeof(addr) + 1;
	as[0] = ps[0] = '\0';
	for (int i = 0, k = 0; i < nh; i++) {
		if (!hosts[i])
			continue;
		used = strlen(hs);
		snprintf(hs + used, sizeof(hostbuf) + 1 - used, "%s%s", k ? "," : "", hosts[i]);
		used = strlen(as);
		snprintf(as + used, sizeof(addr) + 1 - used, "%s%s", k ? "," : "", addr[i]);
		if (np > 1 && i < np) {
			used = strlen(ps);
			snprintf(ps + used, sizeof(portbuf) + 1 - used, "%s%s", k ? "," : "",
				 ports[i]);
		}
		k++;
	}
	for (size_t i = 0; i < n; i++) {
		d->kw[i] = p->kw[i];
		d->val[i] = (int)i == ih ? hs : (int)i == ip && np > 1 ? ps : p->val[i];
	}
	d->kw[n] = "hostaddr";
	d->val[n] = as;
	return 0;
}
