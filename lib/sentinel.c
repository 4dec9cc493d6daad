/* sentinel: SENTINEL get-master-addr-by-name over short-lived connections. */
#include "sentinel.h"

#include <stdio.h>
#include <string.h>

#include "cachenode.h"
#include "log.h"

#define SENTINEL_PASSWORD_MAX 256

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

/* One sentinel's answer: 0 and the address, or -1 with why. */
static int ask(const struct sentinel_addr *s, char *host, size_t hostlen, int *port, char *why,
	       size_t whylen)
{
	redisContext *c = redisConnectWithTimeout(s->host, s->port, *cache_timeout());
	redisReply *r = NULL;
	int rc = -1;

	if (!c || c->err) {
		snprintf(why, whylen, "%s", c ? c->errstr : "out of memory");
		goto out;
	}
	if (redisSetTimeout(c, *cache_timeout()) != REDIS_OK) {
		snprintf(why, whylen, "cannot set timeout");
		goto out;
	}
	if (password[0]) {
		r = redisCommand(c, "AUTH %s", password);
		if (!r || r->type == REDIS_REPLY_ERROR) {
			snprintf(why, whylen, "AUTH: %.80s", r ? r->str : c->errstr);
			goto out;
		}
		freeReplyObject(r);
	}
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

	for (int i = 0; i < nsentinels; i++) {
		int k = (first + i) % nsentinels;
		const struct sentinel_addr *s = &sentinels[k];

		if (ask(s, host, hostlen, port, why, sizeof(why)) == 0) {
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
	cache_set_error("no sentinel named the master \"%s\" (last: %s)", master_name, why);
	return -1;
}
