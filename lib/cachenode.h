/* cachenode: one Redis server as lib/cache sees it, shared by the parts of
 * the cache module (cache.c, sentinel.c, cluster.c) and by nothing else.
 *
 * A node owns its hiredis connection, its address, its backoff and what the
 * server said about itself when connected (role, replication id).  Only
 * these three files include hiredis.h: together they are the module that
 * wraps hiredis (STYLE.md 6). */
#ifndef TH_CACHENODE_H
#define TH_CACHENODE_H

#include <hiredis/hiredis.h>
#include <sys/time.h>

#define CACHE_HOST_MAX 256
#define CACHE_REPLID_MAX 40

struct cache_node {
	redisContext *ctx;
	char host[CACHE_HOST_MAX]; /* a name, an address, or a unix socket path ('/') */
	int port;
	long backoff_ms;
	long long retry_at_ms;
	int want_master;                   /* refuse a server whose role is not master */
	char replid[CACHE_REPLID_MAX + 1]; /* master_replid when connected; "" unknown */
};

/* One command on n: connects when needed (unless backing off), AUTH, the
 * retry rules of cache.h.  NULL when the server could not be reached or did
 * not answer (cache_last_error() says why). */
redisReply *cache_node_cmd(struct cache_node *n, int argc, const char **argv, const size_t *lens);

/* Drops n's connection with the backoff (a failure) ... */
void cache_node_fail(struct cache_node *n, const char *why);
/* ... or without it (the server moved: connect again at once). */
void cache_node_forget(struct cache_node *n, const char *why);

/* Until cache_node_budget(0), every connect and command on any node ends by
 * end_ms (monotonic, mono_ms()): its timeout is what is left when that is
 * less than the module's; once spent, cache_node_cmd() fails at once (NULL)
 * without counting it against the node.  For work that may visit several
 * nodes (cluster.c's slot map over the seeds). */
void cache_node_budget(long long end_ms);

/* The module's settings, as cache_init() set them. */
const struct timeval *cache_timeout(void);
const char *cache_password(void);
void cache_set_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The password in file (a trailing newline dropped) into buf; -1 with a
 * line on stderr naming what when it cannot be read or does not fit. */
int cache_read_secret(const char *what, const char *file, char *buf, size_t size);

/* host:port (host may be [v6]) into host and *port; -1 when malformed. */
int cache_parse_addr(const char *s, size_t len, char *host, size_t hostlen, int *port);

#endif
