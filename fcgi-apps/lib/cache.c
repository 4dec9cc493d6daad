/* cache: a hiredis context with timeouts, dropped and re-made on error. */
#include "cache.h"

#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "mono.h"

#define CACHE_BACKOFF_MIN_MS 100
#define CACHE_BACKOFF_MAX_MS 5000
#define CACHE_MAX_ARGS 64
/* Redis's requirepass: scripts/stack makes 64 hex characters */
#define CACHE_PASSWORD_MAX 256

/* struct cache_reply is redisReply itself: the wrapper type only hides
 * hiredis from everyone else. */

static redisContext *ctx;
static char *cache_host;
static int cache_port;
static struct timeval cache_tv;
static long backoff_ms;
static long long retry_at_ms;
static char last_msg[160];
static char password[CACHE_PASSWORD_MAX + 1]; /* "" = no AUTH */

/* the monotonic clock as the signed milliseconds of the back-off sums */
static long long now_ms(void) { return (long long)mono_ms(); }

/* The password of TH_REDIS_PASSWORD_FILE (the stack's keys/redis.secret),
 * else TH_REDIS_PASSWORD, else none.  Read once here: the broker's plugin
 * may lose the right to read the file after mosquitto drops privileges. */
static int password_load(void)
{
	const char *file = cfg_str("TH_REDIS_PASSWORD_FILE", NULL);
	const char *env = cfg_str("TH_REDIS_PASSWORD", NULL);
	ssize_t n = 0;
	int fd = -1, rc = -1;

	password[0] = '\0';
	if (!file || !*file) {
		if (env && strlen(env) > CACHE_PASSWORD_MAX) {
			fprintf(stderr, "TH_REDIS_PASSWORD: longer than %d bytes\n", CACHE_PASSWORD_MAX);
			goto out;
		}
		snprintf(password, sizeof(password), "%s", env ? env : "");
		rc = 0;
		goto out;
	}
	fd = open(file, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "TH_REDIS_PASSWORD_FILE: cannot open %s: %s\n", file, strerror(errno));
		goto out;
	}
	n = read(fd, password, sizeof(password));
	/* a trailing newline is not part of the password */
	while (n > 0 && (password[n - 1] == '\n' || password[n - 1] == '\r'))
		n--;
	if (n <= 0 || n > CACHE_PASSWORD_MAX) {
		fprintf(stderr, "TH_REDIS_PASSWORD_FILE: %s holds no password of 1..%d bytes\n", file,
			CACHE_PASSWORD_MAX);
		goto out;
	}
	password[n] = '\0';
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	if (rc < 0)
		explicit_bzero(password, sizeof(password));
	return rc;
}

int cache_init(const char *host, int port, long timeout_ms)
{
	if (password_load() < 0)
		return -1;
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
	explicit_bzero(password, sizeof(password));
	backoff_ms = 0;
	retry_at_ms = 0;
}

/* AUTH on a new connection (TCP or unix socket alike) when a password is
 * set; on failure the connection is dropped with the backoff. */
static int authenticate(redisContext *c)
{
	redisReply *r = NULL;
	char why[120];
	int rc = -1;

	if (!password[0])
		return 0;
	r = redisCommand(c, "AUTH %s", password);
	if (!r) {
		snprintf(why, sizeof(why), "AUTH: %.100s", c->errstr[0] ? c->errstr : "no reply");
		goto out;
	}
	if (r->type != REDIS_REPLY_STATUS || strcmp(r->str, "OK") != 0) {
		snprintf(why, sizeof(why), "AUTH refused: %.80s",
			 r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
		goto out;
	}
	rc = 0;
out:
	if (r)
		freeReplyObject(r);
	if (rc < 0)
		drop(why);
	return rc;
}

/* The worker's connection, connected now when there is none (unless backing
 * off).  *reused: it was connected by an earlier call, so a failure on it may
 * be a connection the server closed since (see cache.h), not Redis down. */
static redisContext *connection(int *reused)
{
	*reused = ctx != NULL;
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
	ctx = cache_host[0] == '/' ? redisConnectUnixWithTimeout(cache_host, cache_tv)
				   : redisConnectWithTimeout(cache_host, cache_port, cache_tv);
	if (!ctx || ctx->err) {
		drop(ctx ? ctx->errstr : "out of memory");
		return NULL;
	}
	if (redisSetTimeout(ctx, cache_tv) != REDIS_OK) {
		drop("cannot set timeout");
		return NULL;
	}
	if (authenticate(ctx) < 0)
		return NULL;
	if (backoff_ms)
		log_info("redis: connected");
	backoff_ms = 0;
	return ctx;
}

/* Drops a connection the server closed without starting a backoff: the next
 * connection() connects at once.  A Redis really down then refuses that
 * connect, and drop() backs off as usual. */
static void forget(const char *why)
{
	log_info("redis: %s; reconnecting", why);
	redisFree(ctx);
	ctx = NULL;
}

/* True when the server has closed c while it sat idle between requests
 * (Redis restarted, timeout, CLIENT KILL): the FIN (or RST) is already
 * queued on the socket.  Nothing can be pending on an idle connection but
 * that: every command here reads its whole reply. */
static int closed_while_idle(const redisContext *c)
{
	struct pollfd p = {.fd = c->fd, .events = POLLIN | POLLRDHUP};

	/* An idle connection has nothing to read: readiness is the server's
	 * close, an error, or stray bytes that would be taken for the next
	 * reply — in every case the connection is not to be used (as db.c). */
	return poll(&p, 1, 0) > 0;
}

enum sent { SENT_NONE, SENT_PART, SENT_ALL };

/* redisCommandArgv() in its two halves, to know how far a failed command
 * got: *sent is SENT_ALL once the whole command was written to the socket
 * (the server may have run it), SENT_PART while writing, SENT_NONE before.
 * NULL on failure, with c->err set and *err the errno of the failure. */
static redisReply *send_and_read(redisContext *c, int argc, const char **argv,
				 const size_t *lens, enum sent *sent, int *err)
{
	void *r = NULL;
	int done = 0;

	*sent = SENT_NONE;
	*err = 0;
	if (redisAppendCommandArgv(c, argc, argv, lens) != REDIS_OK)
		return NULL;
	*sent = SENT_PART;
	do {
		if (redisBufferWrite(c, &done) != REDIS_OK) {
			*err = errno;
			return NULL;
		}
	} while (!done);
	*sent = SENT_ALL;
	if (redisGetReply(c, &r) != REDIS_OK) {
		*err = errno;
		return NULL;
	}
	return r;
}

/* Commands that change nothing, which may run twice: retried after a lost
 * reply.  Deliberately short: a command missing here is only not retried. */
static int read_only(const char *cmd, size_t len)
{
	static const char *const names[] = {
		"GET", "MGET", "EXISTS", "STRLEN", "TTL", "PTTL", "TYPE",
		"HGET", "HMGET", "HGETALL", "HEXISTS", "HKEYS", "HLEN",
		"SISMEMBER", "SMEMBERS", "SCARD",
		"ZRANGE", "ZRANGEBYSCORE", "ZSCORE", "ZCARD", "LRANGE", "LLEN",
		"PING",
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strlen(names[i]) == len && strncasecmp(names[i], cmd, len) == 0)
			return 1;
	return 0;
}

/* The failure says the server had closed the connection (EOF, reset, broken
 * pipe), not a timeout or a protocol error. */
static int peer_closed(const redisContext *c, int err)
{
	return c->err == REDIS_ERR_EOF ||
	       (c->err == REDIS_ERR_IO && (err == ECONNRESET || err == EPIPE || err == ENOTCONN));
}

struct cache_reply *cache_cmd(int argc, const char *const *argv, const size_t *lens)
{
	size_t l[CACHE_MAX_ARGS];
	redisContext *c;
	redisReply *r;
	enum sent sent;
	int reused, err, ro;

	if (argc <= 0 || argc > CACHE_MAX_ARGS) {
		snprintf(last_msg, sizeof(last_msg), "bad argument count");
		return NULL;
	}
	if (!lens) {
		for (int i = 0; i < argc; i++)
			l[i] = strlen(argv[i]);
		lens = l;
	}
	c = connection(&reused);
	if (!c)
		return NULL;
	/* A read is not checked first: if the server closed the connection,
	 * the send or the reply fails as peer_closed() and the read is sent
	 * again below, so the check would buy nothing but a system call on
	 * every cache hit. */
	ro = read_only(argv[0], lens[0]);
	if (reused && !ro && closed_while_idle(c)) {
		/* the usual case after a Redis restart: nothing was sent yet */
		forget("connection closed by the server while idle");
		c = connection(&reused);
		if (!c)
			return NULL;
	}
	r = send_and_read(c, argc, (const char **)argv, lens, &sent, &err);
	if (r)
		return (struct cache_reply *)r;
	if (!reused || !peer_closed(c, err)) {
		/* Redis down, slow (timeout) or a fresh connection failing: the
		 * context is unusable from here on, and we back off */
		drop(c->errstr[0] ? c->errstr : "no reply");
		return NULL;
	}
	/* An old connection the server closed between the check above and the
	 * send.  The command certainly did not run when it was not wholly
	 * written (a server executes only whole commands); when it was, the
	 * server may have run it before closing, so only a read is sent again. */
	if (sent != SENT_ALL || ro) {
		forget(c->errstr[0] ? c->errstr : "connection closed by the server");
		c = connection(&reused);
		if (!c)
			return NULL;
		r = send_and_read(c, argc, (const char **)argv, lens, &sent, &err);
		if (r)
			return (struct cache_reply *)r;
		drop(c->errstr[0] ? c->errstr : "no reply");
		return NULL;
	}
	log_clean(last_msg, sizeof(last_msg), c->errstr[0] ? c->errstr : "connection closed");
	log_warn("redis: %s after a write was sent: not retried (it may have run)", last_msg);
	forget("connection closed by the server");
	return NULL;
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

struct cache_reply *cache_script_run(struct cache_script *s, int argc, const char **argv)
{
	struct cache_reply *r;

	for (int attempt = 0; attempt < 2; attempt++) {
		if (!s->sha[0]) {
			const char *load[] = {"SCRIPT", "LOAD", s->body};
			const char *sha;
			size_t len;

			r = cache_cmd(3, load, NULL);
			if (!r)
				return NULL;
			sha = cache_reply_str(r, &len);
			if (cache_reply_type(r) != CACHE_STR || len != 40)
				return r; /* an error reply: the caller logs it */
			memcpy(s->sha, sha, 40);
			s->sha[40] = '\0';
			cache_reply_free(r);
		}
		argv[0] = "EVALSHA";
		argv[1] = s->sha;
		r = cache_cmd(argc, argv, NULL);
		/* NOSCRIPT: Redis restarted or flushed its scripts; load again */
		if (!r || cache_reply_type(r) != CACHE_ERROR ||
		    strncmp(cache_reply_str(r, NULL), "NOSCRIPT", 8) != 0)
			return r;
		cache_reply_free(r);
		s->sha[0] = '\0';
	}
	return NULL;
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
