/* resolve: a host name to a numeric address within a time bound.
 *
 * getaddrinfo() waits as long as the resolver of /etc/resolv.conf lets it
 * (timeout x attempts per name: 10 s with glibc's defaults) when the DNS
 * server does not answer, and no Redis timeout covers it: hiredis calls it
 * inside its connect.  lib/cache resolves every host name here first
 * (getaddrinfo_a, waiting at most the caller's timeout) and hands hiredis
 * the numeric address.  A lookup that outlives its bound goes on in glibc's
 * helper thread; it is kept and freed by a later call once it finished, at
 * most RESOLVE_PENDING_MAX of them: while that many are stuck, a new name
 * fails at once instead of starting another.  Not thread-safe (the cache
 * module's callers are single-threaded processes). */
#ifndef TH_RESOLVE_H
#define TH_RESOLVE_H

#include <stddef.h>

#define RESOLVE_PENDING_MAX 8

/* host (a name, an IPv4 or IPv6 address) into out as a numeric address,
 * within timeout_ms: 0, or -1 with why ("Name or service not known", "no
 * answer from the resolver within 250 ms", ...).  An address is copied as
 * it is, without a lookup. */
int resolve_host(const char *host, long timeout_ms, char *out, size_t outlen, char *why,
		 size_t whylen);

/* Frees the lookups that finished since they timed out (cache_close()). */
void resolve_reap(void);

#endif
