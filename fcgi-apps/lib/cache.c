/* cache: a hiredis context with timeouts, dropped and re-made on error. */
#include "cache.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "log.h"

#define CACHE_BACKOFF_MIN_MS 100
#define CACHE_BACKOFF_MAX_MS 5000
#define CACHE_MAX_ARGS 64

/* struct cache_reply is redisReply itself: the wrapper type only hides
 * hiredis from everyone else. */

static redisContext *ctx;
static char *cache_host;
static int cache_port;
static struct timeval cache_tv;
static long backoff_ms;
static long long retry_at_ms;
static char last_msg[160];

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int cache_init(const char *host, int port, long timeout_ms)
{
	cache_host = strdup(host ? host : "127.0.0.1");
	if (!cache_host)
		return -1;
	cache_port = port;
	cache_tv.tv_sec = timeout_ms / 1000;
	cache_tv.tv_usec = (timeout_ms % 1000) * 1000;
	return 0;
}

static void drop(const char *why)
{
	log_clean(last_msg, sizeof(last_msg), why);
	if (ctx) {
		redisFree(ctx);
		ctx = NULL;
	}
	backoff_ms = backoff_ms ? backoff_ms * 2 : CACHE_BACKOFF_MIN_MS;
	if (backoff_ms > CACHE_BACKOFF_MAX_MS)
		backoff_ms = CACHE_BACKOFF_MAX_MS;
	retry_at_ms = now_ms() + backoff_ms;
	log_warn("redis: %s (retry in %ld ms)", last_msg, backoff_ms);
}

void cache_close(void)
{
	if (ctx)
		redisFree(ctx);
	ctx = NULL;
	free(cache_host);
	cache_host = NULL;
	backoff_ms = 0;
	retry_at_ms = 0;
}

static redisContext *connection(void)
{
	if (ctx)
		return ctx;
	if (!cache_host) {
		snprintf(last_msg, sizeof(last_msg), "redis not configured");
		return NULL;
	}
	if (now_ms() < retry_at_ms) {
		snprintf(last_msg, sizeof(last_msg), "redis unavailable (backing off)");
		return NULL;
	}
	ctx = redisConnectWithTimeout(cache_host, cache_port, cache_tv);
	if (!ctx || ctx->err) {
		drop(ctx ? ctx->errstr : "out of memory");
		return NULL;
	}
	if (redisSetTimeout(ctx, cache_tv) != REDIS_OK) {
		drop("cannot set timeout");
		return NULL;
	}
	if (backoff_ms)
		log_info("redis: connected");
	backoff_ms = 0;
	return ctx;
}

struct cache_reply *cache_cmd(int argc, const char *const *argv, const size_t *lens)
{
	size_t l[CACHE_MAX_ARGS];
	redisContext *c;
	redisReply *r;

	if (argc <= 0 || argc > CACHE_MAX_ARGS) {
		snprintf(last_msg, sizeof(last_msg), "bad argument count");
		return NULL;
	}
	if (!lens) {
		for (int i = 0; i < argc; i++)
			l[i] = strlen(argv[i]);
		lens = l;
	}
	c = connection();
	if (!c)
		return NULL;
	r = redisCommandArgv(c, argc, (const char **)argv, lens);
	if (!r) {
		/* I/O error or timeout: the context is unusable from here on */
		drop(c->errstr[0] ? c->errstr : "no reply");
		return NULL;
	}
	return (struct cache_reply *)r;
}

struct cache_reply *cache_cmd_or_reply(struct http_req *req, int argc,
				       const char *const *argv, const size_t *lens)
{
	struct cache_reply *r = cache_cmd(argc, argv, lens);

	if (!r)
		http_reply_error(req, TH_EUNAVAILABLE, "cache unavailable", NULL);
	return r;
}

const char *cache_last_error(void)
{
	return last_msg;
}

enum cache_type cache_reply_type(const struct cache_reply *cr)
{
	const redisReply *r = (const redisReply *)cr;

	if (!r)
		return CACHE_NIL;
	switch (r->type) {
	case REDIS_REPLY_INTEGER: return CACHE_INT;
	case REDIS_REPLY_STRING:
	case REDIS_REPLY_STATUS: return CACHE_STR;
	case REDIS_REPLY_ARRAY: return CACHE_ARRAY;
	case REDIS_REPLY_ERROR: return CACHE_ERROR;
	default: return CACHE_NIL;
	}
}

long long cache_reply_int(const struct cache_reply *cr)
{
	const redisReply *r = (const redisReply *)cr;

	if (!r)
		return 0;
	if (r->type == REDIS_REPLY_INTEGER)
		return r->integer;
	if (r->type == REDIS_REPLY_STRING)
		return atoll(r->str);
	return 0;
}

const char *cache_reply_str(const struct cache_reply *cr, size_t *len)
{
	const redisReply *r = (const redisReply *)cr;

	if (!r || !r->str) {
		if (len)
			*len = 0;
		return "";
	}
	if (len)
		*len = r->len;
	return r->str;
}

size_t cache_reply_count(const struct cache_reply *cr)
{
	const redisReply *r = (const redisReply *)cr;

	return (r && cache_reply_type(cr) == CACHE_ARRAY) ? r->elements : 0;
}

const struct cache_reply *cache_reply_elem(const struct cache_reply *cr, size_t i)
{
	const redisReply *r = (const redisReply *)cr;

	if (i >= cache_reply_count(cr))
		return NULL;
	return (const struct cache_reply *)r->element[i];
}

void cache_reply_free(struct cache_reply *r)
{
	if (r)
		freeReplyObject(r);
}

int cache_ping(void)
{
	static const char *const argv[] = {"PING"};
	struct cache_reply *r = cache_cmd(1, argv, NULL);
	int ok;

	if (!r)
		return -1;
	ok = cache_reply_type(r) == CACHE_STR &&
	     strcmp(cache_reply_str(r, NULL), "PONG") == 0;
	cache_reply_free(r);
	return ok ? 0 : -1;
}
