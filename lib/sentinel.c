/* sentinel: SENTINEL get-master-addr-by-name over short-lived connections. */
#include "sentinel.h"

#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "cachenode.h"
#include "log.h"
#include "mono.h"
#include "resolve.h"

#define SENTINEL_PASSWORD_MAX 256
/* one lookup over every sentinel, all tries together: this many timeouts */
#define SENTINEL_BUDGET 2

struct sentinel_addr {
	char host[CACHE_HOST_MAX];
	int port;
};

static struct sentinel_addr sentinels[SENTINEL_MAX];
static int nsentinels;
static int first; /* the one that answered last: asked first */
static char master_name[SENTINEL_NAME_MAX + 1];
static char password[SENTINEL_PASSWORD_MAX + 1];

int sentinel_init(const char *list, const char *name, const char *password_file)
{
	const char *p = list, *end;

	nsentinels = first = 0;
	password[0] = '\0';
	if (!name || !*name || strlen(name) > SENTINEL_NAME_MAX) {
		fprintf(stderr, "TH_REDIS_MASTER_NAME: 1..%d bytes\n", SENTINEL_NAME_MAX);
		return -1;
	}
	snprintf(master_name, sizeof(master_name), "%s", name);
	while (*p) {
		end = strchr(p, ',');
		if (!end)
			end = p + strlen(p);
		if (nsentinels == SENTINEL_MAX ||
		    cache_parse_addr(p, (size_t)(end - p), sentinels[nsentinels].host,
				     sizeof(sentinels[nsentinels].host),
				     &sentinels[nsentinels].port) < 0) {
			fprintf(stderr,
				"TH_REDIS_SENTINELS: \"%.*s\" is not host:port (at most %d)\n",
				(int)(end - p) > 80 ? 80 : (int)(end - p), p, SENTINEL_MAX);
			return -1;
		}
		nsentinels++;
		p = *end ? end + 1 : end;
	}
	if (!nsentinels) {
		fprintf(stderr, "TH_REDIS_SENTINELS: no sentinel\n");
		return -1;
	}
	if (password_file && *password_file &&
	    cache_read_secret("TH_REDIS_SENTINEL_PASSWORD_FILE", password_file, password,
			      sizeof(password)) < 0)
		return -1;
	return 0;
}

void sentinel_close(void)
{
	nsentinels = first = 0;
	explicit_bzero(password, sizeof(password));
}

/* The timeout of the next connect or reply: the cache's, or what is left
 * until end_ms when that is less; 0 when nothing is left. */
static int left_tv(long long end_ms, struct timeval *tv)
{
	long long left = end_ms - (long long)mono_ms();
	const struct timeval *full = cache_timeout();

	*tv = *full;
	if (left <= 0)
		return 0;
	if (left < (long long)full->tv_sec * 1000 + full->tv_usec / 1000) {
		tv->tv_sec = left / 1000;
		tv->tv_usec = (left % 1000) * 1000;
	}
	return 1;
}

/* Before each command: its reply must come by end_ms as well. */
static int bound_reply(redisContext *c, long long end_ms, char *why, size_t whylen)
{
	struct timeval tv;

	if (!left_tv(end_ms, &tv)) {
		snprintf(why, whylen, "time budget spent");
		return -1;
	}
	if (redisSetTimeout(c, tv) != REDIS_OK) {
		snprintf(why, whylen, "cannot set timeout");
		return -1;
	}
	return 0;
}

/* One sentinel's answer by end_ms: 0 and the address, or -1 with why. */
static int ask(const struct sentinel_addr *s, long long end_ms, char *host, size_t hostlen,
	       int *port, char *why, size_t whylen)
{
	redisContext *c = NULL;
	redisReply *r = NULL;
	struct timeval tv;
	char addr[INET6_ADDRSTRLEN];
	int rc = -1;

	if (!left_tv(end_ms, &tv)) {
		snprintf(why, whylen, "time budget spent");
		goto out;
	}
	/* a name is resolved within the budget too (lib/resolve.h) */
	if (resolve_host(s->host, (long)tv.tv_sec * 1000 + tv.tv_usec / 1000, addr, sizeof(addr),
			 why, whylen) < 0)
		goto out;
	if (!left_tv(end_ms, &tv)) {
		snprintf(why, whylen, "time budget spent");
		goto out;
	}
	c = redisConnectWithTimeout(addr, s->port, tv);
	if (!c || c->err) {
		snprintf(why, whylen, "%s", c ? c->errstr : "out of memory");
		goto out;
	}
	if (password[0]) {
		if (bound_reply(c, end_ms, why, whylen) < 0)
			goto out;
		r = redisCommand(c, "AUTH %s", password);
		if (!r || r->type == REDIS_REPLY_ERROR) {
			snprintf(why, whylen, "AUTH: %.80s", r ? r->str : c->errstr);
			goto out;
		}
		freeReplyObject(r);
		r = NULL;
	}
	if (bound_reply(c, end_ms, why, whylen) < 0)
		goto out;
	r = redisCommand(c, "SENTINEL get-master-addr-by-name %s", master_name);
	if (!r) {
		snprintf(why, whylen, "%.100s", c->errstr[0] ? c->errstr : "no reply");
		goto out;
	}
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
	    r->element[0]->type != REDIS_REPLY_STRING ||
	    r->element[1]->type != REDIS_REPLY_STRING) {
		snprintf(why, whylen, "%.100s",
			 r->type == REDIS_REPLY_ERROR ? r->str : "does not know the master name");
		goto out;
	}
	if (r->element[0]->len == 0 || r->element[0]->len >= hostlen ||
	    sscanf(r->element[1]->str, "%d", port) != 1 || *port < 1 || *port > 65535) {
		snprintf(why, whylen, "a malformed address");
		goto out;
	}
	memcpy(host, r->element[0]->str, r->element[0]->len);
	host[r->element[0]->len] = '\0';
	rc = 0;
out:
	if (r)
		freeReplyObject(r);
	if (c)
		redisFree(c);
	return rc;
}

int sentinel_master(char *host, size_t hostlen, int *port)
{
	char why[160] = "no sentinel configured";
	const struct timeval *tv = cache_timeout();
	long long end = (long long)mono_ms() +
			SENTINEL_BUDGET * ((long long)tv->tv_sec * 1000 + tv->tv_usec / 1000);
	int asked = 0;

	for (int i = 0; i < nsentinels; i++) {
		int k = (first + i) % nsentinels;
		const struct sentinel_addr *s = &sentinels[k];

		if (i > 0 && (long long)mono_ms() >= end)
			break;
		asked++;
		if (ask(s, end, host, hostlen, port, why, sizeof(why)) == 0) {
			if (k != first)
				log_info("redis: sentinel %s:%d names the master %s:%d", s->host,
					 s->port, host, *port);
			first = k;
			return 0;
		}
		{
			char clean[160];

			log_warn("redis: sentinel %s:%d: %s", s->host, s->port,
				 log_clean(clean, sizeof(clean), why));
		}
	}
	/* the budget ran out before some were asked: the next lookup starts
	 * with those, so silent sentinels listed first cannot hide a live one */
	if (nsentinels)
		first = (first + asked) % nsentinels;
	cache_set_error("no sentinel named the master \"%s\" within %d timeouts (last: %s)",
			master_name, SENTINEL_BUDGET, why);
	return -1;
}
