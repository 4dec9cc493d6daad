/* cache: hiredis connections with timeouts, dropped and re-made on error;
 * one server, a master found through Sentinel, or a Cluster (cluster.c). */
#include "cache.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "arena.h"
#include "cachenode.h"
#include "cluster.h"
#include "config.h"
#include "log.h"
#include "mono.h"
#include "resolve.h"
#include "sentinel.h"

#define CACHE_BACKOFF_MIN_MS 100
#define CACHE_BACKOFF_MAX_MS 5000
/* Behind Sentinel or in a Cluster another server takes over within seconds:
 * a worker backing off for 5 s would come back later than the service. */
#define CACHE_BACKOFF_MAX_HA_MS 1000
/* Redis's requirepass: scripts/stack makes 64 hex characters */
#define CACHE_PASSWORD_MAX 256
/* INFO replication is about 500 bytes; a longer reply is cut, not an error */
#define CACHE_INFO_LINE_MAX 128
/* Sentinel: a check that found no sentinel is not repeated for this long
 * (each costs up to a timeout per sentinel) */
#define CACHE_SENTINEL_RECHECK_FAILED_MS 5000

/* struct cache_reply is redisReply itself: the wrapper type only hides
 * hiredis from everyone else. */

enum cache_mode { MODE_NONE, MODE_SINGLE, MODE_SENTINEL, MODE_CLUSTER };

static enum cache_mode mode;
static struct cache_node main_node; /* MODE_SINGLE, MODE_SENTINEL */
static struct timeval cache_tv;
static long backoff_max_ms = CACHE_BACKOFF_MAX_MS;
static char last_msg[160];
/* Sentinel: when the sentinels were last asked whether the master moved */
static long long sentinel_checked_ms;
static long sentinel_check_ms = 1000;
static char password[CACHE_PASSWORD_MAX + 1]; /* "" = no AUTH */

/* the monotonic clock as the signed milliseconds of the back-off sums */
static long long now_ms(void)
{
	return (long long)mono_ms();
}

void cache_set_error(const char *fmt, ...)
{
	char raw[sizeof(last_msg)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(raw, sizeof(raw), fmt, ap);
	va_end(ap);
	log_clean(last_msg, sizeof(last_msg), raw);
}

const struct timeval *cache_timeout(void)
{
	return &cache_tv;
}

/* cache_node_budget(): 0, or the monotonic time every connect and command
 * on any node must end by */
static long long budget_end_ms;

void cache_node_budget(long long end_ms)
{
	budget_end_ms = end_ms;
}

/* The timeout of the next connect or command: the module's, or what is left
 * of the budget when that is less; 0 when the budget is spent. */
static int bounded_tv(struct timeval *tv)
{
	long long left;

	*tv = cache_tv;
	if (!budget_end_ms)
		return 1;
	left = budget_end_ms - now_ms();
	if (left <= 0)
		return 0;
	if (left < (long long)cache_tv.tv_sec * 1000 + cache_tv.tv_usec / 1000) {
		tv->tv_sec = left / 1000;
		tv->tv_usec = (left % 1000) * 1000;
	}
	return 1;
}
const char *cache_password(void)
{
	return password;
}

int cache_read_secret(const char *what, const char *file, char *buf, size_t size)
{
	ssize_t n = 0;
	int fd, rc = -1;

	buf[0] = '\0';
	fd = open(file, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "%s: cannot open %s: %s\n", what, file, strerror(errno));
		return -1;
	}
	n = read(fd, buf, size);
	/* a trailing newline is not part of the password */
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	if (n <= 0 || (size_t)n >= size) {
		fprintf(stderr, "%s: %s holds no password of 1..%zu bytes\n", what, file, size - 1);
		goto out;
	}
	buf[n] = '\0';
	rc = 0;
out:
	close(fd);
	if (rc < 0)
		explicit_bzero(buf, size);
	return rc;
}

/* The password of TH_REDIS_PASSWORD_FILE (the stack's keys/redis.secret),
 * else TH_REDIS_PASSWORD, else none.  Read once here: the broker's plugin
 * may lose the right to read the file after mosquitto drops privileges. */
static int password_load(void)
{
	const char *file = cfg_str("TH_REDIS_PASSWORD_FILE", NULL);
	const char *env = cfg_str("TH_REDIS_PASSWORD", NULL);

	password[0] = '\0';
	if (file && *file)
		return cache_read_secret("TH_REDIS_PASSWORD_FILE", file, password,
					 sizeof(password));
	if (env && strlen(env) > CACHE_PASSWORD_MAX) {
		fprintf(stderr, "TH_REDIS_PASSWORD: longer than %d bytes\n", CACHE_PASSWORD_MAX);
		return -1;
	}
	snprintf(password, sizeof(password), "%s", env ? env : "");
	return 0;
}

static void set_timeout(long timeout_ms)
{
	cache_tv.tv_sec = timeout_ms / 1000;
	cache_tv.tv_usec = (timeout_ms % 1000) * 1000;
}

int cache_init(const char *host, int port, long timeout_ms)
{
	if (password_load() < 0)
		return -1;
	memset(&main_node, 0, sizeof(main_node));
	snprintf(main_node.host, sizeof(main_node.host), "%s", host ? host : "127.0.0.1");
	main_node.port = port;
	set_timeout(timeout_ms);
	backoff_max_ms = CACHE_BACKOFF_MAX_MS;
	mode = MODE_SINGLE;
	return 0;
}

int cache_init_env(long timeout_ms, int use_socket)
{
	const char *cluster = cfg_str("TH_REDIS_CLUSTER", NULL);
	const char *sentinels = cfg_str("TH_REDIS_SENTINELS", NULL);
	const char *sock = use_socket ? cfg_str("TH_REDIS_SOCKET", NULL) : NULL;

	if (cluster && sentinels) {
		fprintf(stderr, "TH_REDIS_CLUSTER and TH_REDIS_SENTINELS: set one, not both\n");
		return -1;
	}
	if (!cluster && !sentinels)
		/* a unix socket when the stack offers one, else TCP */
		return cache_init(sock ? sock : cfg_str("TH_REDIS_HOST", "127.0.0.1"),
				  (int)cfg_int("TH_REDIS_PORT", 6379, 1, 65535), timeout_ms);
	if (password_load() < 0)
		return -1;
	set_timeout(timeout_ms);
	backoff_max_ms = CACHE_BACKOFF_MAX_HA_MS;
	if (cluster) {
		if (cluster_init(cluster) < 0)
			return -1;
		mode = MODE_CLUSTER;
		return 0;
	}
	if (sentinel_init(sentinels, cfg_str("TH_REDIS_MASTER_NAME", "townhall"),
			  cfg_str("TH_REDIS_SENTINEL_PASSWORD_FILE", NULL)) < 0)
		return -1;
	memset(&main_node, 0, sizeof(main_node));
	main_node.want_master = 1;
	sentinel_check_ms = (long)cfg_int("TH_REDIS_SENTINEL_CHECK_MS", 1000, 100, 60000);
	sentinel_checked_ms = 0;
	mode = MODE_SENTINEL;
	return 0;
}

void cache_node_fail(struct cache_node *n, const char *why)
{
	if (why != last_msg)
		log_clean(last_msg, sizeof(last_msg), why);
	if (n->ctx) {
		redisFree(n->ctx);
		n->ctx = NULL;
	}
	n->replid[0] = '\0';
	n->backoff_ms = n->backoff_ms ? n->backoff_ms * 2 : CACHE_BACKOFF_MIN_MS;
	if (n->backoff_ms > backoff_max_ms)
		n->backoff_ms = backoff_max_ms;
	n->retry_at_ms = now_ms() + n->backoff_ms;
	log_warn("redis: %s (retry in %ld ms)", last_msg, n->backoff_ms);
}

/* Drops a connection the server closed without starting a backoff: the next
 * connection connects at once.  A Redis really down then refuses that
 * connect, and cache_node_fail() backs off as usual. */
void cache_node_forget(struct cache_node *n, const char *why)
{
	char clean[120];

	log_info("redis: %s; reconnecting", log_clean(clean, sizeof(clean), why));
	if (n->ctx)
		redisFree(n->ctx);
	n->ctx = NULL;
	n->replid[0] = '\0';
}

void cache_close(void)
{
	if (main_node.ctx)
		redisFree(main_node.ctx);
	memset(&main_node, 0, sizeof(main_node));
	cluster_close();
	sentinel_close();
	resolve_reap();
	explicit_bzero(password, sizeof(password));
	mode = MODE_NONE;
}

/* AUTH on a new connection (TCP or unix socket alike) when a password is
 * set; on failure the connection is dropped with the backoff. */
static int authenticate(struct cache_node *n)
{
	redisReply *r = NULL;
	char why[120];
	int rc = -1;

	if (!password[0])
		return 0;
	r = redisCommand(n->ctx, "AUTH %s", password);
	if (!r) {
		snprintf(why, sizeof(why), "AUTH: %.100s",
			 n->ctx->errstr[0] ? n->ctx->errstr : "no reply");
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
		cache_node_fail(n, why);
	return rc;
}

/* The value of "name:" in an INFO reply, into out ("" when absent). */
static void info_field(const char *info, const char *name, char *out, size_t size)
{
	size_t nl = strlen(name), i = 0;
	const char *p = info;

	out[0] = '\0';
	while (p && *p) {
		if (strncmp(p, name, nl) == 0 && p[nl] == ':') {
			p += nl + 1;
			while (p[i] && p[i] != '\r' && p[i] != '\n' && i + 1 < size &&
			       i < CACHE_INFO_LINE_MAX) {
				out[i] = p[i];
				i++;
			}
			out[i] = '\0';
			return;
		}
		p = strchr(p, '\n');
		if (p)
			p++;
	}
}

/* What the new connection's server is: its replication id (which changes
 * when a replica is promoted, so a failover that may have lost writes is
 * seen by revoke.c and the broker's mirror watch) and, behind Sentinel, that
 * it is really the master: a sentinel's answer may be stale. */
static int identify(struct cache_node *n)
{
	redisReply *r = redisCommand(n->ctx, "INFO replication");
	char role[16], why[CACHE_HOST_MAX + 64];
	int rc = -1;

	n->replid[0] = '\0';
	if (!r) {
		snprintf(why, sizeof(why), "INFO: %.100s",
			 n->ctx->errstr[0] ? n->ctx->errstr : "no reply");
		goto out;
	}
	if (r->type != REDIS_REPLY_STRING) {
		/* INFO refused (renamed, ACL): nothing known; a Sentinel master
		 * cannot be verified then */
		if (n->want_master) {
			snprintf(why, sizeof(why), "INFO refused: cannot verify the master");
			goto out;
		}
		rc = 0;
		goto out;
	}
	info_field(r->str, "role", role, sizeof(role));
	info_field(r->str, "master_replid", n->replid, sizeof(n->replid));
	if (n->want_master && strcmp(role, "master") != 0) {
		snprintf(why, sizeof(why), "%s:%d is not the master (role %s)", n->host, n->port,
			 role[0] ? role : "unknown");
		goto out;
	}
	rc = 0;
out:
	if (r)
		freeReplyObject(r);
	if (rc < 0)
		cache_node_fail(n, why);
	return rc;
}

/* n's connection, connected now when there is none (unless backing off).
 * *reused: it was connected by an earlier call, so a failure on it may be a
 * connection the server closed since (see cache.h), not Redis down. */
static redisContext *connection(struct cache_node *n, int *reused)
{
	struct timeval tv;

	*reused = n->ctx != NULL;
	if (n->ctx)
		return n->ctx;
	if (mode == MODE_NONE) {
		snprintf(last_msg, sizeof(last_msg), "redis not configured");
		return NULL;
	}
	if (now_ms() < n->retry_at_ms) {
		snprintf(last_msg, sizeof(last_msg), "redis unavailable (backing off)");
		return NULL;
	}
	/* Sentinel: the master is asked for on every new connection, so an
	 * error, a timeout or a READONLY (all of which drop the connection)
	 * is followed by a fresh answer */
	if (mode == MODE_SENTINEL && n == &main_node) {
		if (sentinel_master(n->host, sizeof(n->host), &n->port) < 0) {
			cache_node_fail(n, last_msg);
			return NULL;
		}
		sentinel_checked_ms = now_ms();
	}
	if (!bounded_tv(&tv)) {
		/* not the node's fault: no backoff */
		snprintf(last_msg, sizeof(last_msg), "redis: time budget spent");
		return NULL;
	}
	if (n->host[0] == '/') {
		n->ctx = redisConnectUnixWithTimeout(n->host, tv);
	} else {
		/* a name is resolved here, within the same timeout as the connect:
		 * hiredis's own getaddrinfo has no bound (lib/resolve.h) */
		char addr[INET6_ADDRSTRLEN], why[CACHE_HOST_MAX + 140];
		long tv_ms = (long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
		long long t0 = now_ms();

		if (resolve_host(n->host, tv_ms, addr, sizeof(addr), why, sizeof(why)) < 0) {
			char msg[2 * CACHE_HOST_MAX + 200];

			snprintf(msg, sizeof(msg), "%s:%d: %s", n->host, n->port, why);
			cache_node_fail(n, msg);
			return NULL;
		}
		/* what is left of the timeout for the connect (at least 1 ms) */
		tv_ms -= (long)(now_ms() - t0);
		if (tv_ms < 1)
			tv_ms = 1;
		if (tv_ms < (long)tv.tv_sec * 1000 + tv.tv_usec / 1000) {
			tv.tv_sec = tv_ms / 1000;
			tv.tv_usec = (tv_ms % 1000) * 1000;
		}
		n->ctx = redisConnectWithTimeout(addr, n->port, tv);
	}
	if (!n->ctx || n->ctx->err) {
		char why[CACHE_HOST_MAX + 140];

		snprintf(why, sizeof(why), "%s:%d: %s", n->host, n->port,
			 n->ctx ? n->ctx->errstr : "out of memory");
		cache_node_fail(n, why);
		return NULL;
	}
	if (redisSetTimeout(n->ctx, tv) != REDIS_OK) {
		cache_node_fail(n, "cannot set timeout");
		return NULL;
	}
	if (authenticate(n) < 0 || identify(n) < 0)
		return NULL;
	if (n->backoff_ms)
		log_info("redis: connected to %s:%d", n->host, n->port);
	n->backoff_ms = 0;
	return n->ctx;
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
static redisReply *send_and_read(redisContext *c, int argc, const char **argv, const size_t *lens,
				 enum sent *sent, int *err)
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
		"GET",      "MGET",  "EXISTS",  "STRLEN",        "TTL",    "PTTL",  "TYPE",
		"HGET",     "HMGET", "HGETALL", "HEXISTS",       "HKEYS",  "HLEN",  "SISMEMBER",
		"SMEMBERS", "SCARD", "ZRANGE",  "ZRANGEBYSCORE", "ZSCORE", "ZCARD", "LRANGE",
		"LLEN",     "PING",  "CLUSTER", "ASKING",
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

/* cache_node_cmd() within the budget, if one is set: the command's timeout
 * is what is left of it, and the module's again afterwards. */
static redisReply *node_cmd(struct cache_node *n, int argc, const char **argv, const size_t *lens);

redisReply *cache_node_cmd(struct cache_node *n, int argc, const char **argv, const size_t *lens)
{
	struct timeval tv;
	redisReply *r;

	if (!budget_end_ms)
		return node_cmd(n, argc, argv, lens);
	if (!bounded_tv(&tv)) {
		snprintf(last_msg, sizeof(last_msg), "redis: time budget spent");
		return NULL;
	}
	if (n->ctx && redisSetTimeout(n->ctx, tv) != REDIS_OK) {
		cache_node_fail(n, "cannot set timeout");
		return NULL;
	}
	r = node_cmd(n, argc, argv, lens);
	if (n->ctx && redisSetTimeout(n->ctx, cache_tv) != REDIS_OK)
		cache_node_fail(n, "cannot set timeout");
	return r;
}

static redisReply *node_cmd(struct cache_node *n, int argc, const char **argv, const size_t *lens)
{
	redisContext *c;
	redisReply *r;
	enum sent sent;
	int reused, err, ro;

	c = connection(n, &reused);
	if (!c)
		return NULL;
	/* A read is not checked first: if the server closed the connection,
	 * the send or the reply fails as peer_closed() and the read is sent
	 * again below, so the check would buy nothing but a system call on
	 * every cache hit. */
	ro = read_only(argv[0], lens[0]);
	if (reused && !ro && closed_while_idle(c)) {
		/* the usual case after a Redis restart: nothing was sent yet */
		cache_node_forget(n, "connection closed by the server while idle");
		c = connection(n, &reused);
		if (!c)
			return NULL;
	}
	r = send_and_read(c, argc, argv, lens, &sent, &err);
	if (r)
		return r;
	if (!reused || !peer_closed(c, err)) {
		/* Redis down, slow (timeout) or a fresh connection failing: the
		 * context is unusable from here on, and we back off */
		cache_node_fail(n, c->errstr[0] ? c->errstr : "no reply");
		return NULL;
	}
	/* An old connection the server closed between the check above and the
	 * send.  The command certainly did not run when it was not wholly
	 * written (a server executes only whole commands); when it was, the
	 * server may have run it before closing, so only a read is sent again. */
	if (sent != SENT_ALL || ro) {
		cache_node_forget(n, c->errstr[0] ? c->errstr : "connection closed by the server");
		c = connection(n, &reused);
		if (!c)
			return NULL;
		r = send_and_read(c, argc, argv, lens, &sent, &err);
		if (r)
			return r;
		cache_node_fail(n, c->errstr[0] ? c->errstr : "no reply");
		return NULL;
	}
	log_clean(last_msg, sizeof(last_msg), c->errstr[0] ? c->errstr : "connection closed");
	log_warn("redis: %s after a write was sent: not retried (it may have run)", last_msg);
	cache_node_forget(n, "connection closed by the server");
	return NULL;
}

/* The server says it is a replica now (a failover demoted it): the write
 * did not run. */
static int is_readonly(const redisReply *r)
{
	return r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "READONLY", 8) == 0;
}

/* Sentinel: a master demoted by SENTINEL failover (or cut off by a
 * partition) keeps accepting writes from connected clients until the
 * sentinels reconfigure it, which can take them 10 s, and those writes are
 * lost.  So once every TH_REDIS_SENTINEL_CHECK_MS (1 s) the sentinels are
 * asked again, and a master that moved is left at once. */
static void sentinel_recheck(int now_please)
{
	char host[CACHE_HOST_MAX];
	int port;
	long long now = now_ms();

	/* a check that failed holds even when asked for now: each costs up to
	 * a timeout per sentinel */
	if (!main_node.ctx || now < sentinel_checked_ms ||
	    (!now_please && now - sentinel_checked_ms < sentinel_check_ms))
		return;
	sentinel_checked_ms = now;
	if (sentinel_master(host, sizeof(host), &port) < 0) {
		/* keep the master we have; ask again later */
		sentinel_checked_ms = now + CACHE_SENTINEL_RECHECK_FAILED_MS;
		return;
	}
	if (port != main_node.port || strcmp(host, main_node.host) != 0)
		cache_node_forget(&main_node, "the sentinels name another master");
}

struct cache_reply *cache_cmd(int argc, const char *const *argv, const size_t *lens)
{
	size_t l[CACHE_MAX_ARGS];
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
	if (mode == MODE_CLUSTER)
		return cluster_cmd(argc, (const char **)argv, lens);
	if (mode == MODE_SENTINEL)
		sentinel_recheck(0);
	r = cache_node_cmd(&main_node, argc, (const char **)argv, lens);
	if (!is_readonly(r))
		return (struct cache_reply *)r;
	freeReplyObject(r);
	if (mode == MODE_SENTINEL) {
		/* a failover demoted our master: ask the sentinels again, once */
		cache_node_forget(&main_node, "the master became a replica");
		r = cache_node_cmd(&main_node, argc, (const char **)argv, lens);
		if (!is_readonly(r))
			return (struct cache_reply *)r;
		freeReplyObject(r);
	}
	cache_node_fail(&main_node, "READONLY: the server is a replica");
	return NULL;
}

void cache_master_recheck(void)
{
	if (mode == MODE_SENTINEL)
		sentinel_recheck(1);
}

const char *cache_last_error(void)
{
	return last_msg;
}

const char *cache_data_id(const char *key)
{
	if (mode == MODE_CLUSTER)
		return cluster_data_id(key);
	return main_node.ctx ? main_node.replid : "";
}

int cache_data_ids(char *out, size_t size)
{
	if (mode == MODE_CLUSTER)
		return cluster_data_ids(out, size);
	snprintf(out, size, "%s", main_node.ctx ? main_node.replid : "");
	return out[0] ? 0 : -1;
}

int cache_parse_addr(const char *s, size_t len, char *host, size_t hostlen, int *port)
{
	const char *colon = NULL, *h = s;
	size_t hl;
	long long p;
	char num[8];

	for (size_t i = 0; i < len; i++)
		if (s[i] == ':')
			colon = s + i;
	if (!colon || (size_t)(s + len - colon - 1) >= sizeof(num) || colon + 1 == s + len)
		return -1;
	memcpy(num, colon + 1, (size_t)(s + len - colon - 1));
	num[s + len - colon - 1] = '\0';
	if (cfg_parse_int(num, 1, 65535, &p) < 0)
		return -1;
	hl = (size_t)(colon - s);
	if (hl >= 2 && s[0] == '[' && s[hl - 1] == ']') {
		h = s + 1;
		hl -= 2;
	}
	if (hl == 0 || hl >= hostlen)
		return -1;
	memcpy(host, h, hl);
	host[hl] = '\0';
	*port = (int)p;
	return 0;
}

enum cache_type cache_reply_type(const struct cache_reply *cr)
{
	const redisReply *r = (const redisReply *)cr;

	if (!r)
		return CACHE_NIL;
	switch (r->type) {
	case REDIS_REPLY_INTEGER:
		return CACHE_INT;
	case REDIS_REPLY_STRING:
	case REDIS_REPLY_STATUS:
		return CACHE_STR;
	case REDIS_REPLY_ARRAY:
		return CACHE_ARRAY;
	case REDIS_REPLY_ERROR:
		return CACHE_ERROR;
	default:
		return CACHE_NIL;
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

static void reply_cleanup(void *p)
{
	freeReplyObject(p);
}

struct cache_reply *cache_reply_own(struct arena *a, struct cache_reply *r)
{
	if (!r)
		return NULL;
	/* on failure arena_defer has freed r */
	return arena_defer(a, reply_cleanup, r) == 0 ? r : NULL;
}

struct cache_reply *cache_script_run(struct cache_script *s, int argc, const char **argv)
{
	struct cache_reply *r;

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
	if (!r || cache_reply_type(r) != CACHE_ERROR ||
	    strncmp(cache_reply_str(r, NULL), "NOSCRIPT", 8) != 0)
		return r;
	/* NOSCRIPT: Redis restarted or flushed its scripts, a failover put
	 * another server in its place, or (Cluster) the key's node never saw
	 * the SCRIPT LOAD: EVAL sends the body, which also caches it there */
	cache_reply_free(r);
	argv[0] = "EVAL";
	argv[1] = s->body;
	return cache_cmd(argc, argv, NULL);
}

int cache_ping(void)
{
	static const char *const argv[] = {"PING"};
	struct cache_reply *r = cache_cmd(1, argv, NULL);
	int ok;

	if (!r)
		return -1;
	ok = cache_reply_type(r) == CACHE_STR && strcmp(cache_reply_str(r, NULL), "PONG") == 0;
	cache_reply_free(r);
	return ok ? 0 : -1;
}
