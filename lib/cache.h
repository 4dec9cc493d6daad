/* cache: Redis through hiredis (cache.c, with its parts sentinel.c and
 * cluster.c, are the only files that include hiredis.h).
 *
 * Three ways to find Redis (cache_init_env):
 *   - one server (TH_REDIS_SOCKET, else TH_REDIS_HOST/TH_REDIS_PORT);
 *   - Sentinel (TH_REDIS_SENTINELS, TH_REDIS_MASTER_NAME): every new
 *     connection asks the sentinels for the master (sentinel.h) and checks
 *     that the server says it is the master; an error, a timeout or a
 *     READONLY reply (a failover demoted it) drops the connection, so the
 *     next one asks again.  A write refused with READONLY did not run: it is
 *     sent once more to the master the sentinels name now;
 *   - Cluster (TH_REDIS_CLUSTER): each command goes to the node of its
 *     first key's slot (cluster.h), following MOVED and ASK.
 * Every new connection records the server's replication id, which changes
 * when a replica is promoted: cache_data_id() lets revoke.c and the broker's
 * mirror watch see a failover that may have lost writes.
 *
 * One connection per worker (per node in a Cluster), opened lazily with connect and command timeouts,
 * re-opened after any I/O error with the same backoff discipline as db: while
 * Redis is down, calls fail at once (NULL, TH_EUNAVAILABLE).  Callers that
 * can live without Redis (caches) treat failure as a miss; those that cannot
 * (rate limits, sessions) reply 503 (the web library's cache_cmd_or_reply(),
 * fcgi-apps/lib/reply.h).
 *
 * A connection the server closed (Redis restarted, CLIENT KILL, its idle
 * timeout) is not "Redis down": the worker reconnects at once, without
 * backoff, and the request goes on.
 *   - Before each write on a connection made by an earlier call, a poll()
 *     looks for the server's FIN or RST already queued on the idle socket; if
 *     there is one nothing was sent, so the write is sent on a new
 *     connection.  This is the case after a restart.  A read skips the check
 *     (a system call on every cache hit): it is retried as below.
 *   - If the server closed the connection before the send (EOF, ECONNRESET,
 *     EPIPE), the command is sent again once on a new
 *     connection when it certainly did not run: it was not wholly written
 *     (a server runs only whole commands), or it only reads (GET, MGET,
 *     EXISTS, HGET, SISMEMBER, PING, ...; see read_only() in cache.c).  A
 *     write wholly sent whose reply was lost may have run: it is not sent
 *     again, the call fails (NULL) and only this request sees it; the next
 *     call connects at once.  EVAL/EVALSHA count as writes.
 * A failure on a fresh connection, a timeout, or a reconnect that fails
 * starts the backoff: a Redis really down still costs one refused connect
 * and then fails at once. */
#ifndef TH_CACHE_H
#define TH_CACHE_H

#include <stddef.h>

#include "err.h"

struct arena;
struct cache_reply;

enum cache_type {
	CACHE_NIL = 0,
	CACHE_INT,
	CACHE_STR, /* bulk and status strings */
	CACHE_ARRAY,
	CACHE_ERROR, /* the server's error reply (the call itself succeeded) */
};

/* host: a name or address (TCP port), or a path starting with '/' (a unix
 * socket; port unused).  timeout_ms bounds connect and each command.  Does
 * not connect.  Every connection sends AUTH first when a password is set:
 * the content of TH_REDIS_PASSWORD_FILE (read here, once; -1 when it cannot
 * be read), else TH_REDIS_PASSWORD. */
int cache_init(const char *host, int port, long timeout_ms);
/* The one set-up the apps, the broker plugin and the bridge share: reads
 * TH_REDIS_CLUSTER, TH_REDIS_SENTINELS (+ TH_REDIS_MASTER_NAME, default
 * "townhall", TH_REDIS_SENTINEL_PASSWORD_FILE), else TH_REDIS_SOCKET (only
 * when use_socket) or TH_REDIS_HOST/TH_REDIS_PORT, and the password as
 * cache_init().  -1 with a line on stderr on a bad setting.  Does not
 * connect. */
int cache_init_env(long timeout_ms, int use_socket);
void cache_close(void);

/* Arguments of one command, the command's name included: an EVALSHA of a
 * batch of version keys (lib/unreadver.h) or an MGET of them is one
 * command, not a command per key. */
#define CACHE_MAX_ARGS 1024

/* One command as argv (binary-safe with lens; lens NULL: strlen), at most
 * CACHE_MAX_ARGS of them.  Returns a
 * reply the caller frees with cache_reply_free(), or NULL when Redis could not
 * be reached (then cache_last_error() says why). */
struct cache_reply *cache_cmd(int argc, const char *const *argv, const size_t *lens);
const char *cache_last_error(void);

enum cache_type cache_reply_type(const struct cache_reply *r);
long long cache_reply_int(const struct cache_reply *r);
/* String value (also of an error reply); "" otherwise.  Lives with r. */
const char *cache_reply_str(const struct cache_reply *r, size_t *len);
size_t cache_reply_count(const struct cache_reply *r);
/* Element i of an array reply (borrowed: freed with r), or NULL. */
const struct cache_reply *cache_reply_elem(const struct cache_reply *r, size_t i);
void cache_reply_free(struct cache_reply *r);
/* Hands r (or NULL) to arena a: it is freed with the arena (arena_defer);
 * its owner never calls cache_reply_free() on it (arena_release() frees it
 * early).  Returns r; NULL when r was NULL or memory is short (then r is
 * freed).  The web library's cache_own() gives a reply to the request. */
struct cache_reply *cache_reply_own(struct arena *a, struct cache_reply *r);

/* A Lua script run with EVALSHA: body is the script; sha starts "" and is
 * filled by the first SCRIPT LOAD.  One static per script per process. */
struct cache_script {
	const char *body;
	char sha[41];
};

/* The start of a script that needs the time: `now` is the server's clock in
 * ms (Redis TIME), the one clock every worker, broker and host sharing the
 * server agrees on.  A script may call TIME before it writes: Redis 5 and
 * later replicate the script's effects, not the script. */
#define CACHE_LUA_NOW                   \
	"local t = redis.call('TIME') " \
	"local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) "

/* EVALSHA s with the keys and arguments in argv[2..argc-1] (argv[0..1] are
 * filled here), loading the script first when its sha is unknown or Redis
 * lost it (restart, SCRIPT FLUSH).  Returns the reply, an error reply as is
 * (the caller logs it), or NULL when Redis could not be reached. */
struct cache_reply *cache_script_run(struct cache_script *s, int argc, const char **argv);

/* The replication id (INFO's master_replid) of the server that holds key,
 * as read when the connection was made; "" when unknown or not connected.
 * A different id than before means another server's data: a failover (or
 * a restart without data) may have lost writes the id's holder had. */
const char *cache_data_id(const char *key);

/* The replication ids of every server holding data, sorted and joined by
 * ',': in a Cluster those of every master in the slot map (a failover of
 * any master changes it, whichever node a marker key lives on); else the
 * one server's (as cache_data_id()).  0, or -1 with out "" when one is not
 * known (a master down, no map yet).  For data spread over every node (the
 * membership mirror).  At most CACHE_DATA_IDS_MAX bytes with the NUL. */
#define CACHE_DATA_IDS_MAX (64 * 41)
int cache_data_ids(char *out, size_t size);

/* Sentinel: asks the sentinels now whether the master moved (normally at
 * most once every TH_REDIS_SENTINEL_CHECK_MS), for a reader that must see a
 * write just made elsewhere (revoke.c after the host's sequence moved).  A
 * no-op in the other modes, and for 5 s after a check no sentinel answered. */
void cache_master_recheck(void);

/* PING: 0 when Redis answers PONG, -1 otherwise. */
int cache_ping(void);

#endif
