/* revoke: a local hash set of revoked session ids, synced from Redis. */
#include "revoke.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cache.h"
#include "config.h"
#include "db.h"
#include "log.h"

/* one hash tag: in a Cluster the set and its marker live on one node, so
 * the marker's replication id is the set's */
#define REVOKE_KEY "th:{revoked}"
#define REVOKE_EPOCH_KEY "th:{revoked}:epoch"
#define REVOKE_LOCK_KEY "th:{revoked}:rebuild"
#define REVOKE_LOCK_PX "15000"
/* while another worker rebuilds, look again this soon */
#define REVOKE_BUSY_RETRY_MS 100
#define REVOKE_SYNC_MS 1000
#define REVOKE_OVERLAP_MS \
	5000                          /* re-read this much before the newest score:
				  * hosts' clocks and commit order differ */
#define REVOKE_MAX_ENTRIES (1u << 20) /* default; TH_REVOKE_MAX_ENTRIES lowers it */
#define REVOKE_PG_CACHE 256
/* Revocations this process published lately, sent again when its Redis
 * connection lands on other data (see moved()) */
#define REVOKE_RECENT 256
#define REVOKE_MOVED_LOOKBACK_MS 30000

struct entry {
	int64_t sid; /* 0: empty */
	int64_t at_ms;
};

static struct entry *set;
static size_t set_cap, set_len, set_max = REVOKE_MAX_ENTRIES;
/* The local set is full and a revocation was left out of it: until every
 * token such a revocation could stop has expired (this time, in ms), a
 * session that is not in the set is asked of PostgreSQL instead of being
 * taken as live.  0: nothing was ever left out. */
static long long overflow_until_ms;
static long ttl_ms;
static long long last_sync_ms = -REVOKE_SYNC_MS;
static long long newest_ms;  /* highest score seen in Redis */
static long long last_ok_ms; /* last successful Redis sync */
static int degraded;         /* Redis failed, or its copy is being rebuilt */
static int redis_out;        /* Redis failed since last_ok_ms */
static char epoch[96];
static uint64_t *host_seq; /* mapped; NULL when no file */
static uint64_t seen_seq;
static int host_seq_rw; /* mapped writable (apps), or read-only */

static int64_t recent[REVOKE_RECENT]; /* a ring; 0: empty */
static long long recent_at[REVOKE_RECENT];
static unsigned recent_next;
static char synced_id[48]; /* cache_data_id() of the last sync */

/* per-session answers from PostgreSQL while Redis is out */
static struct {
	int64_t sid;
	int revoked;
	long long at_ms;
} pg_cache[REVOKE_PG_CACHE];

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static size_t slot_of(int64_t sid, size_t cap)
{
	uint64_t h = (uint64_t)sid * 0x9e3779b97f4a7c15ull;

	return (size_t)(h >> 20) & (cap - 1);
}

static int set_grow(void);
static int set_has(int64_t sid);

static void set_put(int64_t sid, int64_t at_ms)
{
	size_t i;
	long long until;

	if (sid <= 0)
		return;
	if ((set_len + 1) * 2 > set_cap && !set_has(sid) && set_grow() < 0) {
		/* full (or out of memory): never drop a revocation silently —
		 * remember that the set is incomplete, and for how long */
		until = (long long)at_ms + ttl_ms + 60000;
		if (until > overflow_until_ms) {
			if (!overflow_until_ms || overflow_until_ms < now_ms())
				log_warn("revocations: local set full (%zu); checking sessions "
					 "outside it in PostgreSQL",
					 set_len);
			overflow_until_ms = until;
		}
		return;
	}
	for (i = slot_of(sid, set_cap);; i = (i + 1) & (set_cap - 1)) {
		if (set[i].sid == sid) {
			if (at_ms > set[i].at_ms)
				set[i].at_ms = at_ms;
			return;
		}
		if (set[i].sid == 0) {
			set[i].sid = sid;
			set[i].at_ms = at_ms;
			set_len++;
			return;
		}
	}
}

/* Rehashes into a table sized for the live entries, dropping expired ones. */
static int set_rebuild(size_t cap)
{
	struct entry *old = set;
	size_t old_cap = set_cap, i;
	long long horizon = now_ms() - ttl_ms - 60000;

	set = calloc(cap, sizeof(*set));
	if (!set) {
		set = old;
		return -1;
	}
	set_cap = cap;
	set_len = 0;
	for (i = 0; i < old_cap; i++)
		if (old[i].sid && old[i].at_ms >= horizon)
			set_put(old[i].sid, old[i].at_ms);
	free(old);
	return 0;
}

static int set_grow(void)
{
	size_t cap = set_cap * 2;

	if (cap > set_max * 2) {
		/* over the bound: forget the expired first; if still full, the
		 * newest revocation is checked in PostgreSQL instead */
		return set_rebuild(set_cap) == 0 && (set_len + 1) * 2 <= set_cap ? 0 : -1;
	}
	return set_rebuild(cap);
}

static int set_has(int64_t sid)
{
	size_t i;

	for (i = slot_of(sid, set_cap); set[i].sid; i = (i + 1) & (set_cap - 1))
		if (set[i].sid == sid)
			return 1;
	return 0;
}

int revoke_init(const char *seq_path, long ttl_s)
{
	int fd;

	ttl_ms = ttl_s * 1000;
	set_max = (size_t)cfg_int("TH_REVOKE_MAX_ENTRIES", REVOKE_MAX_ENTRIES, 16,
				  REVOKE_MAX_ENTRIES);
	overflow_until_ms = 0;
	set_cap = 1024;
	while (set_cap > set_max * 2) /* a small bound starts small */
		set_cap /= 2;
	set = calloc(set_cap, sizeof(*set));
	if (!set)
		return -1;
	if (!seq_path)
		return 0;
	fd = open(seq_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd >= 0) {
		if (ftruncate(fd, sizeof(uint64_t)) < 0) {
			close(fd);
			return -1;
		}
		host_seq_rw = 1;
	} else {
		/* a reader under another user (the broker) only watches the
		 * sequence; it never publishes revocations */
		fd = open(seq_path, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			/* not there yet (the broker may start before any app):
			 * the once-a-second refresh still holds */
			log_warn("revocations: %s not readable; refreshing by time only", seq_path);
			return 0;
		}
		{
			struct stat st;

			/* mapping past the end of a short file would fault on access */
			if (fstat(fd, &st) < 0 || st.st_size < (off_t)sizeof(uint64_t)) {
				close(fd);
				log_warn("revocations: %s too short; refreshing by time only",
					 seq_path);
				return 0;
			}
		}
	}
	host_seq = mmap(NULL, sizeof(uint64_t), host_seq_rw ? PROT_READ | PROT_WRITE : PROT_READ,
			MAP_SHARED, fd, 0);
	close(fd);
	if (host_seq == MAP_FAILED) {
		host_seq = NULL;
		return -1;
	}
	seen_seq = __atomic_load_n(host_seq, __ATOMIC_ACQUIRE);
	return 0;
}

void revoke_close(void)
{
	memset(recent, 0, sizeof(recent));
	recent_next = 0;
	synced_id[0] = '\0';
	/* a process that starts over (a test, a forked worker) syncs anew */
	epoch[0] = '\0';
	last_sync_ms = -REVOKE_SYNC_MS;
	newest_ms = last_ok_ms = 0;
	degraded = redis_out = 0;
	memset(pg_cache, 0, sizeof(pg_cache));
	free(set);
	set = NULL;
	set_cap = set_len = 0;
	if (host_seq)
		munmap(host_seq, sizeof(uint64_t));
	host_seq = NULL;
	host_seq_rw = 0;
}

void revoke_invalidate(void)
{
	last_sync_ms = -REVOKE_SYNC_MS;
}

/* Adds every (member, score) of a ZRANGEBYSCORE ... WITHSCORES reply. */
static void add_scored(const struct cache_reply *r)
{
	size_t i, n = cache_reply_count(r);

	for (i = 0; i + 1 < n; i += 2) {
		int64_t sid = atoll(cache_reply_str(cache_reply_elem(r, i), NULL));
		long long at = atoll(cache_reply_str(cache_reply_elem(r, i + 1), NULL));

		set_put(sid, at);
		if (at > newest_ms)
			newest_ms = at;
	}
}

/* Revocations in PostgreSQL since since_ms, into the local set and (when
 * to_redis) into Redis: scored by their time, or by now when late (readers
 * that sync incrementally look only a few seconds behind their newest). */
static int load_from_pg_scored(long long since_ms, int to_redis, int score_now)
{
	char nowbuf[24];

	char since[32];
	const char *params[1] = {since};
	struct db_res *r;
	int i, n;

	snprintf(since, sizeof(since), "%lld", since_ms);
	snprintf(nowbuf, sizeof(nowbuf), "%lld", now_ms());
	r = db_exec(DB_PRIMARY,
		    "SELECT id, (extract(epoch FROM revoked_at) * 1000)::bigint "
		    "FROM sessions WHERE revoked_at >= to_timestamp($1::bigint / 1000.0)",
		    1, params);
	if (!r)
		return -1;
	n = db_res_rows(r);
	for (i = 0; i < n; i++) {
		const char *sid = db_res_get(r, i, 0), *at = db_res_get(r, i, 1);

		set_put(atoll(sid), atoll(at));
		if (to_redis) {
			const char *argv[] = {"ZADD", REVOKE_KEY, score_now ? nowbuf : at, sid};

			cache_reply_free(cache_cmd(4, argv, NULL));
		}
	}
	db_res_free(r);
	return 0;
}

static int load_from_pg(long long since_ms, int to_redis)
{
	return load_from_pg_scored(since_ms, to_redis, 0);
}

/* This process's connection now reaches other data than at its last sync:
 * a failover.  Sentinel reconfigures a demoted master some time after the
 * promotion, and clients still connected to it (this one, a moment ago)
 * wrote there: those writes are lost when it resyncs from the new master,
 * and a marker rebuilt on the new master before them does not have them.
 * So every process that moves sends again what it published lately, and
 * what PostgreSQL revoked lately, scored now (incremental readers see them). */
static void moved(long long now)
{
	char sid[24], at[24];
	const char *argv[] = {"ZADD", REVOKE_KEY, at, sid};
	unsigned n = 0;

	snprintf(at, sizeof(at), "%lld", now);
	for (unsigned i = 0; i < REVOKE_RECENT; i++) {
		/* what no unexpired token can need is not sent */
		if (!recent[i] || recent_at[i] < now - ttl_ms - 60000)
			continue;
		snprintf(sid, sizeof(sid), "%lld", (long long)recent[i]);
		cache_reply_free(cache_cmd(4, argv, NULL));
		n++;
	}
	if (load_from_pg_scored((last_ok_ms ? last_ok_ms : now) - REVOKE_MOVED_LOOKBACK_MS, 1, 1) <
	    0)
		log_warn("revocations: PostgreSQL unavailable; sent %u recent revocations again",
			 n);
	else
		log_warn("revocations: Redis is other data now (failover?); sent %u recent "
			 "revocations and PostgreSQL's of the last %d s again",
			 n, REVOKE_MOVED_LOOKBACK_MS / 1000);
}

static struct cache_reply *get_epoch(void)
{
	static const char *const argv[] = {"GET", REVOKE_EPOCH_KEY};

	return cache_cmd(2, argv, NULL);
}

/* The marker names the server's data it was made on: "<replid>/<ms>-<pid>"
 * (just "<ms>-<pid>" when the server does not say its replication id). */
static int epoch_current(const char *marker, const char *id)
{
	size_t n = strlen(id);

	return !id[0] || (strncmp(marker, id, n) == 0 && marker[n] == '/');
}

/* The rebuild lock: one worker rebuilds, the others wait for its marker.
 * Long enough for a rebuild (a PostgreSQL query bounded by the statement
 * timeout, then one ZADD per live revocation); a worker that dies half way
 * holds it no longer than this, and since the marker is written last, its
 * half-made copy is never taken as complete. */
static struct cache_script unlock_script = {
	.body = "if redis.call('GET', KEYS[1]) == ARGV[1] then "
		"return redis.call('DEL', KEYS[1]) end return 0",
	.sha = "",
};
static unsigned long rebuilds;

unsigned long revoke_rebuilds(void)
{
	return rebuilds;
}

static void unlock(const char *token)
{
	const char *argv[] = {NULL, NULL, "1", REVOKE_LOCK_KEY, token};

	/* failing, the lock expires by itself */
	cache_reply_free(cache_script_run(&unlock_script, 5, argv));
}

/* Redis lost the set (restart, flush), or the set is another server's data
 * (a failover promoted a replica that may have missed revocations, while
 * the marker it did get says "complete"): rebuild it from PostgreSQL, into
 * the local set too, then mark it with a fresh epoch naming this server's
 * data.  Every worker notices at once; the one that takes the lock (SET NX
 * PX) rebuilds, the others answer from PostgreSQL meanwhile and read the
 * set once its marker is there (REVOKE_BUSY).  The marker is checked again
 * under the lock: a worker that takes the lock just after another's rebuild
 * ended finds it done.  0: rebuilt or found done; -1: failed. */
#define REVOKE_BUSY 1
static int rebuild_redis(const char *id, int replace)
{
	char fresh[96], token[64];
	const char *lock[] = {"SET", REVOKE_LOCK_KEY, token, "NX", "PX", REVOKE_LOCK_PX};
	const char *mark[] = {"SET", REVOKE_EPOCH_KEY, fresh};
	struct cache_reply *r, *e;
	int got, rc = -1;

	snprintf(token, sizeof(token), "%d-%lld-%ld", (int)getpid(), now_ms(), random());
	r = cache_cmd(6, lock, NULL);
	if (!r)
		return -1;
	got = cache_reply_type(r);
	cache_reply_free(r);
	if (got == CACHE_NIL)
		return REVOKE_BUSY; /* another worker holds it */
	if (got != CACHE_STR)
		return -1;
	e = get_epoch();
	if (!e)
		goto out;
	if (cache_reply_type(e) == CACHE_STR && epoch_current(cache_reply_str(e, NULL), id)) {
		cache_reply_free(e);
		rc = 0; /* another worker's rebuild ended while we looked */
		goto out;
	}
	cache_reply_free(e);
	if (load_from_pg(now_ms() - ttl_ms - 60000, 1) < 0)
		goto out;
	snprintf(fresh, sizeof(fresh), "%s%s%lld-%d", id, id[0] ? "/" : "", now_ms(),
		 (int)getpid());
	r = cache_cmd(3, mark, NULL);
	if (!r || cache_reply_type(r) == CACHE_ERROR) {
		cache_reply_free(r);
		goto out;
	}
	cache_reply_free(r);
	rebuilds++;
	if (replace)
		log_warn("revocations: Redis is another server's data now (failover?): "
			 "rebuilt its copy from PostgreSQL");
	else
		log_info("revocations: rebuilt Redis copy from PostgreSQL");
	rc = 0;
out:
	unlock(token);
	return rc;
}

static int sync_redis(long long now)
{
	struct cache_reply *e, *r = NULL;
	char from[32];
	const char *argv[] = {"ZRANGEBYSCORE", REVOKE_KEY, from, "+inf", "WITHSCORES"};
	int full, rc = -1;

	e = get_epoch();
	if (!e)
		goto out;
	if (cache_reply_type(e) == CACHE_NIL ||
	    !epoch_current(cache_reply_str(e, NULL), cache_data_id(REVOKE_EPOCH_KEY))) {
		char id[48];
		int replace = cache_reply_type(e) != CACHE_NIL;

		snprintf(id, sizeof(id), "%s", cache_data_id(REVOKE_EPOCH_KEY));
		cache_reply_free(e);
		e = NULL;
		rc = rebuild_redis(id, replace);
		if (rc != 0)
			goto out;
		rc = -1;
		e = get_epoch();
		if (!e)
			goto out;
		if (cache_reply_type(e) != CACHE_STR) {
			/* gone again (a flush in between): not complete */
			rc = REVOKE_BUSY;
			goto out;
		}
	}
	{
		const char *id = cache_data_id(REVOKE_EPOCH_KEY);

		if (id[0] && synced_id[0] && strcmp(id, synced_id) != 0)
			moved(now);
		snprintf(synced_id, sizeof(synced_id), "%s", id);
	}
	full = strcmp(cache_reply_str(e, NULL), epoch) != 0;
	if (full) {
		snprintf(epoch, sizeof(epoch), "%s", cache_reply_str(e, NULL));
		snprintf(from, sizeof(from), "%lld", now - ttl_ms - 60000);
	} else {
		snprintf(from, sizeof(from), "%lld", newest_ms - REVOKE_OVERLAP_MS);
	}
	r = cache_cmd(5, argv, NULL);
	if (!r || cache_reply_type(r) != CACHE_ARRAY)
		goto out;
	add_scored(r);
	rc = 0;
out:
	cache_reply_free(r);
	cache_reply_free(e);
	return rc;
}

static void sync_now(long long now)
{
	int rc;

	last_sync_ms = now;
	rc = sync_redis(now);
	if (rc == REVOKE_BUSY) {
		/* another worker rebuilds the copy: until its marker is there,
		 * what is not in the local set is asked of PostgreSQL, and the
		 * marker is looked for again soon */
		if (!degraded)
			log_info("revocations: another worker rebuilds Redis's copy; "
				 "checking PostgreSQL meanwhile");
		degraded = 1;
		last_sync_ms = now - REVOKE_SYNC_MS + REVOKE_BUSY_RETRY_MS;
		return;
	}
	if (rc < 0) {
		if (!redis_out)
			log_warn("revocations: Redis unavailable, checking PostgreSQL");
		degraded = redis_out = 1;
		return;
	}
	if (redis_out) {
		/* revocations made while Redis was out may be missing from it:
		 * take them from the truth.  (Waiting for another worker's
		 * rebuild needs no such read: the rebuild was that read.) */
		if (load_from_pg(last_ok_ms ? last_ok_ms - REVOKE_OVERLAP_MS : now - ttl_ms - 60000,
				 0) < 0)
			return; /* stay degraded; try again next second */
		redis_out = 0;
		log_info("revocations: Redis back");
	}
	if (degraded) {
		degraded = 0;
		memset(pg_cache, 0, sizeof(pg_cache));
	}
	last_ok_ms = now;
}

static int check_pg(int64_t sid, long long now)
{
	size_t i = (size_t)((uint64_t)sid % REVOKE_PG_CACHE);
	char id[24];
	const char *params[1] = {id};
	struct db_res *r;
	int revoked;

	if (pg_cache[i].sid == sid && now - pg_cache[i].at_ms < REVOKE_SYNC_MS)
		return pg_cache[i].revoked;
	snprintf(id, sizeof(id), "%lld", (long long)sid);
	r = db_exec(DB_PRIMARY, "SELECT revoked_at IS NOT NULL FROM sessions WHERE id = $1", 1,
		    params);
	if (!r)
		return -1;
	/* a session that does not exist cannot vouch for a token */
	revoked = db_res_rows(r) == 0 || strcmp(db_res_get(r, 0, 0), "t") == 0;
	db_res_free(r);
	pg_cache[i].sid = sid;
	pg_cache[i].revoked = revoked;
	pg_cache[i].at_ms = now;
	return revoked;
}

long long revoke_now_ms(void)
{
	return now_ms();
}

int revoke_check(int64_t session_id)
{
	return revoke_check_at(session_id, now_ms());
}

int revoke_check_at(int64_t session_id, long long now)
{
	uint64_t seq = host_seq ? __atomic_load_n(host_seq, __ATOMIC_ACQUIRE) : 0;

	if (seq != seen_seq || now - last_sync_ms >= REVOKE_SYNC_MS) {
		/* a revocation on this host must be seen by the very next request:
		 * not on an old master a failover left behind, which the
		 * once-a-second Sentinel check might not have noticed yet */
		if (seq != seen_seq)
			cache_master_recheck();
		seen_seq = seq;
		sync_now(now);
	}
	if (set_has(session_id))
		return 1;
	/* degraded: Redis is out; overflow: the set misses revocations */
	if (degraded || now < overflow_until_ms)
		return check_pg(session_id, now);
	return 0;
}

void revoke_publish(int64_t session_id)
{
	char sid[24], at[24];
	long long now = now_ms();
	const char *argv[] = {"ZADD", REVOKE_KEY, at, sid};
	char horizon[32];
	const char *trim[] = {"ZREMRANGEBYSCORE", REVOKE_KEY, "-inf", horizon};
	struct cache_reply *r;

	snprintf(sid, sizeof(sid), "%lld", (long long)session_id);
	snprintf(at, sizeof(at), "%lld", now);
	set_put(session_id, now);
	recent[recent_next % REVOKE_RECENT] = session_id;
	recent_at[recent_next++ % REVOKE_RECENT] = now;
	r = cache_cmd(4, argv, NULL);
	if (!r)
		log_warn("revocations: Redis unavailable; session %s revoked in PostgreSQL only",
			 sid);
	cache_reply_free(r);
	/* forget what no unexpired token can need any more */
	snprintf(horizon, sizeof(horizon), "(%lld", now - ttl_ms - 60000);
	cache_reply_free(cache_cmd(4, trim, NULL));
	if (host_seq && host_seq_rw)
		__atomic_add_fetch(host_seq, 1, __ATOMIC_RELEASE);
}
