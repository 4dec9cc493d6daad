/* resolve: host names within a time bound (getaddrinfo_a). */
#include "resolve.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "mono.h"

#define RESOLVE_NAME_MAX 255

/* one lookup: glibc keeps pointers into it until the lookup ends */
struct lookup {
	struct gaicb cb;
	struct addrinfo hints;
	char name[RESOLVE_NAME_MAX + 1];
};

/* lookups that outlived their bound, still running in glibc's thread */
static struct lookup *pending[RESOLVE_PENDING_MAX];

static void lookup_free(struct lookup *l)
{
	if (!l)
		return;
	if (l->cb.ar_result)
		freeaddrinfo(l->cb.ar_result);
	free(l);
}

void resolve_reap(void)
{
	for (int i = 0; i < RESOLVE_PENDING_MAX; i++)
		if (pending[i] && gai_error(&pending[i]->cb) != EAI_INPROGRESS) {
			lookup_free(pending[i]);
			pending[i] = NULL;
		}
}

static int has_free_slot(void)
{
	for (int i = 0; i < RESOLVE_PENDING_MAX; i++)
		if (!pending[i])
			return 1;
	return 0;
}

/* keeps a lookup that is still running in a free slot */
static void keep_pending(struct lookup *l)
{
	for (int i = 0; i < RESOLVE_PENDING_MAX; i++)
		if (!pending[i]) {
			pending[i] = l;
			return;
		}
}

static int is_numeric(const char *host)
{
	unsigned char buf[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

/* waits for l until end_ms: 0 done, -1 still running */
static int wait_until(struct lookup *l, long long end_ms)
{
	const struct gaicb *list[1] = {&l->cb};

	for (;;) {
		long long left = end_ms - (long long)mono_ms();
		struct timespec ts;

		if (gai_error(&l->cb) != EAI_INPROGRESS)
			return 0;
		if (left <= 0)
			return -1;
		ts.tv_sec = left / 1000;
		ts.tv_nsec = (left % 1000) * 1000000L;
		/* EAI_AGAIN: the time ran out; EAI_INTR: a signal; either way look again */
		(void)gai_suspend(list, 1, &ts);
	}
}

int resolve_host(const char *host, long timeout_ms, char *out, size_t outlen, char *why,
		 size_t whylen)
{
	struct lookup *l = NULL;
	struct gaicb *list[1];
	int rc = -1, err;

	resolve_reap();
	if (is_numeric(host)) {
		if (snprintf(out, outlen, "%s", host) >= (int)outlen) {
			snprintf(why, whylen, "address too long");
			goto out;
		}
		rc = 0;
		goto out;
	}
	if (strlen(host) > RESOLVE_NAME_MAX) {
		snprintf(why, whylen, "name too long");
		goto out;
	}
	if (!has_free_slot()) {
		snprintf(why, whylen, "%d lookups still without an answer from the resolver",
			 RESOLVE_PENDING_MAX);
		goto out;
	}
	l = calloc(1, sizeof(*l));
	if (!l) {
		snprintf(why, whylen, "out of memory");
		goto out;
	}
	memcpy(l->name, host, strlen(host) + 1);
	l->hints.ai_family = AF_UNSPEC;
	l->hints.ai_socktype = SOCK_STREAM;
	l->cb.ar_name = l->name;
	l->cb.ar_request = &l->hints;
	list[0] = &l->cb;
	err = getaddrinfo_a(GAI_NOWAIT, list, 1, NULL);
	if (err) {
		snprintf(why, whylen, "%s", gai_strerror(err));
		goto out;
	}
	if (wait_until(l, (long long)mono_ms() + (timeout_ms > 0 ? timeout_ms : 1)) < 0) {
		snprintf(why, whylen, "no answer from the resolver within %ld ms", timeout_ms);
		/* a lookup in progress cannot be cancelled: kept until it ends (a
		 * slot is free: checked above, and nothing ran since) */
		if (gai_cancel(&l->cb) == EAI_NOTCANCELED) {
			keep_pending(l);
			l = NULL;
		}
		goto out;
	}
	err = gai_error(&l->cb);
	if (err) {
		snprintf(why, whylen, "%s", gai_strerror(err));
		goto out;
	}
	if (!l->cb.ar_result || getnameinfo(l->cb.ar_result->ai_addr, l->cb.ar_result->ai_addrlen,
					    out, (socklen_t)outlen, NULL, 0, NI_NUMERICHOST)) {
		snprintf(why, whylen, "no usable address");
		goto out;
	}
	rc = 0;
out:
	lookup_free(l);
	return rc;
}
