/* presence: per-user connection counts in Redis, leases, reaping (see
 * presence.h for the keys and the protocol). */
#include "presence.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cache.h"
#include "imap.h"
#include "log.h"
#include "mono.h"

#define KEY_MAX 128
#define INSTANCE_MAX (PRESENCE_BROKER_ID_MAX + 32)
#define DEAD_MAX 16      /* dead instances remembered from a renewal */
#define REAP_BATCH 48    /* users taken from a dead instance's set at once */
#define TICK_BUDGET_MS 5 /* Redis work of one tick (resync + reap), at least one step */

/* the local value of a user: connections here, and two flags */
#define COUNT_MASK 0xffffffffLL
#define F_DIRTY (1LL << 32)  /* Redis may not hold the local count */
#define F_INSET (1LL << 33)  /* uid is in this instance's user set */
#define F_LINGER (1LL << 34) /* one of the count lingers (presence_linger()) */

struct presence {
	char ns[48];            /* key prefix, "th:presence" */
	char registry[KEY_MAX]; /* <ns>:{brokers}:live */
	char broker[PRESENCE_BROKER_ID_MAX + 1];
	char inst[INSTANCE_MAX]; /* "" until registered */
	long lease_ms, renew_ms;
	presence_announce_fn announce;
	void *arg;
	struct imap users; /* uid -> count | flags */
	int64_t *dirty;    /* uids to write again (F_DIRTY set once each) */
	size_t ndirty, dirty_head, dirty_cap;
	uint64_t next_renew;    /* mono ms */
	uint64_t renewed_at;    /* mono ms of the last renewal that held */
	uint64_t healthy_since; /* mono ms since which renewals held (0: not) */
	int failing;            /* the last renewal failed: logged once */
	char dead[DEAD_MAX][INSTANCE_MAX];
	int ndead;
	char reaping[INSTANCE_MAX]; /* the instance this broker is reaping, or "" */
	int claims_tried;           /* the dead list of this renewal was tried */
	struct cache_script set, renew, claim, finish;
};

/* KEYS[1] user hash; ARGV: instance, new count here, limit (0: none),
 * how many of the count linger, instances known dead (not counted against
 * the limit).  A lingering connection (field "~<instance>", '~' starts no
 * instance id) counts in the totals but not against the limit.
 * {-1, total}: refused by the limit; else {total before, total after}. */
static const char set_body[] =
	"local v = redis.call('HGETALL', KEYS[1]) "
	"local dead, idle = {}, {} "
	"for i = 5, #ARGV do dead[ARGV[i]] = true end "
	"for i = 1, #v, 2 do "
	"  if string.byte(v[i], 1) == 126 then "
	"    idle[string.sub(v[i], 2)] = tonumber(v[i + 1]) or 0 end "
	"end "
	"local old, live, mine = 0, 0, 0 "
	"for i = 1, #v, 2 do "
	"  if string.byte(v[i], 1) ~= 126 then "
	"    local c = tonumber(v[i + 1]) or 0 "
	"    old = old + c "
	"    if v[i] == ARGV[1] then mine = c "
	"    elseif not dead[v[i]] then live = live + c - (idle[v[i]] or 0) end "
	"  end "
	"end "
	"local n, lim, g = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]) "
	"if lim > 0 and (n > mine or g < (idle[ARGV[1]] or 0)) and live + n - g > lim then "
	"  return {-1, old} end "
	"if n > 0 then redis.call('HSET', KEYS[1], ARGV[1], n) "
	"else redis.call('HDEL', KEYS[1], ARGV[1]) end "
	"if n > 0 and g > 0 then redis.call('HSET', KEYS[1], '~' .. ARGV[1], g) "
	"else redis.call('HDEL', KEYS[1], '~' .. ARGV[1]) end "
	"return {old, old - mine + n}";

/* KEYS[1] registry, KEYS[2] the reap lock of this instance; ARGV: instance,
 * lease ms, "register"|"renew"|"release", broker id prefix "<id>/".
 * {0}: the instance is gone (reaped or being reaped, or Redis lost it);
 * {1, dead...}: held; {2, dead...}: revived after its lease had ended. */
static const char renew_body[] = CACHE_LUA_NOW
	"local s = redis.call('ZSCORE', KEYS[1], ARGV[1]) "
	"local st = 1 "
	"if ARGV[3] == 'release' then "
	"  if s then redis.call('ZADD', KEYS[1], 0, ARGV[1]) end return {0} "
	"elseif ARGV[3] == 'register' then "
	"  for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, 255)) do "
	"    if m ~= ARGV[1] and string.sub(m, 1, #ARGV[4]) == ARGV[4] then "
	"      redis.call('ZADD', KEYS[1], 0, m) end "
	"  end "
	"elseif not s then return {0} "
	"elseif tonumber(s) < now then "
	"  if redis.call('EXISTS', KEYS[2]) == 1 then return {0} end "
	"  st = 2 "
	"end "
	"redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1]) "
	"local r = {st} "
	"for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. now, 'LIMIT', 0, "
	"16)) do "
	"  r[#r + 1] = m end "
	"return r";

/* KEYS[1] registry, KEYS[2] reap lock of the target; ARGV: target, me,
 * lock ms.  1 when the caller holds the lock (taken or extended). */
static const char claim_body[] =
	"local s = redis.call('ZSCORE', KEYS[1], ARGV[1]) "
	"if not s then return 0 end " CACHE_LUA_NOW "if tonumber(s) >= now then return 0 end "
	"if redis.call('SET', KEYS[2], ARGV[2], 'NX', 'PX', ARGV[3]) then return 1 end "
	"if redis.call('GET', KEYS[2]) == ARGV[2] then "
	"  redis.call('PEXPIRE', KEYS[2], ARGV[3]) return 1 end "
	"return 0";

/* KEYS[1] registry, KEYS[2] reap lock, KEYS[3] users set of the target;
 * ARGV: target, me.  Removes the target when its set is empty and the
 * caller holds the lock: 1 done, 0 not. */
static const char finish_body[] = "if redis.call('GET', KEYS[2]) ~= ARGV[2] then return 0 end "
				  "if redis.call('SCARD', KEYS[3]) > 0 then return 0 end "
				  "redis.call('ZREM', KEYS[1], ARGV[1]) "
				  "redis.call('DEL', KEYS[2]) "
				  "return 1";

static void users_key(const struct presence *p, char *out, const char *inst)
{
	snprintf(out, KEY_MAX, "%s:{brokers}:users:%s", p->ns, inst);
}

static void lock_key(const struct presence *p, char *out, const char *inst)
{
	snprintf(out, KEY_MAX, "%s:{brokers}:reap:%s", p->ns, inst);
}

/* cache_script_run, with an error reply logged and turned into NULL. */
static struct cache_reply *script_run(struct cache_script *s, int argc, const char **argv)
{
	struct cache_reply *r = cache_script_run(s, argc, argv);
	char msg[120];

	if (!r || cache_reply_type(r) != CACHE_ERROR)
		return r;
	log_warn("presence: script refused: %s",
		 log_clean(msg, sizeof(msg), cache_reply_str(r, NULL)));
	cache_reply_free(r);
	return NULL;
}

static int broker_id_ok(const char *id)
{
	size_t n = id ? strlen(id) : 0;

	if (n == 0 || n > PRESENCE_BROKER_ID_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = id[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_'))
			return 0;
	}
	return 1;
}

struct presence *presence_open(const struct presence_cfg *cfg)
{
	struct presence *p;

	if (!broker_id_ok(cfg->broker_id)) {
		log_error("presence: broker id must be 1..%d of [A-Za-z0-9_-]",
			  PRESENCE_BROKER_ID_MAX);
		return NULL;
	}
	p = calloc(1, sizeof(*p));
	if (!p || imap_init(&p->users, 1024) < 0) {
		free(p);
		log_error("presence: out of memory");
		return NULL;
	}
	snprintf(p->broker, sizeof(p->broker), "%s", cfg->broker_id);
	snprintf(p->ns, sizeof(p->ns), "%s", cfg->key_prefix ? cfg->key_prefix : "th:presence");
	snprintf(p->registry, sizeof(p->registry), "%s:{brokers}:live", p->ns);
	p->lease_ms = cfg->lease_ms < 200 ? 200 : cfg->lease_ms;
	p->renew_ms = p->lease_ms / 5;
	p->announce = cfg->announce;
	p->arg = cfg->arg;
	p->set.body = set_body;
	p->renew.body = renew_body;
	p->claim.body = claim_body;
	p->finish.body = finish_body;
	return p;
}

/* Our counts may be written: registered, and by our own clock the lease
 * still runs (a renewal at most lease - renew_ms ago: a margin for the
 * difference between our clock and Redis's). */
static int writable(const struct presence *p)
{
	return p->inst[0] && mono_ms() - p->renewed_at < (uint64_t)(p->lease_ms - p->renew_ms);
}

static int64_t *user_slot(struct presence *p, int64_t uid)
{
	return imap_get(&p->users, uid);
}

/* Queues uid to be written again (once). */
static void mark_dirty(struct presence *p, int64_t uid)
{
	int64_t *v = user_slot(p, uid);

	if (!v || (*v & F_DIRTY))
		return;
	if (p->ndirty == p->dirty_cap) {
		size_t cap = p->dirty_cap ? p->dirty_cap * 2 : 256;
		int64_t *d;

		/* compact what was taken from the head first */
		if (p->dirty_head) {
			memmove(p->dirty, p->dirty + p->dirty_head,
				(p->ndirty - p->dirty_head) * sizeof(*p->dirty));
			p->ndirty -= p->dirty_head;
			p->dirty_head = 0;
		}
		if (p->ndirty == p->dirty_cap) {
			d = realloc(p->dirty, cap * sizeof(*d));
			if (!d)
				return; /* not queued: the next resync-all catches it */
			p->dirty = d;
			p->dirty_cap = cap;
		}
	}
	p->dirty[p->ndirty++] = uid;
	*v |= F_DIRTY;
}

/* Every local user is written again (a new or revived instance). */
static void dirty_all(struct presence *p)
{
	/* mark_dirty adds or removes nothing in the table: the scan holds */
	for (size_t i = 0; i < p->users.cap; i++) {
		int64_t uid = p->users.slots[i].key;

		if (!uid)
			continue;
		p->users.slots[i].val &= ~F_INSET; /* a new instance has an empty set */
		mark_dirty(p, uid);
	}
}

/* Forgets uid locally when nothing is left to do for it. */
static void maybe_forget(struct presence *p, int64_t uid)
{
	int64_t *v = user_slot(p, uid);

	if (v && (*v & COUNT_MASK) == 0 && !(*v & (F_DIRTY | F_INSET)))
		imap_del(&p->users, uid);
}

/* The set script for uid: our field := n, of which `linger` linger.  1 and
 * *before and *after on success, 0 when refused by limit, -1 when Redis
 * failed. */
static int write_count(struct presence *p, const char *inst, int64_t uid, long n, int linger,
		       long limit, long long *before, long long *after)
{
	char key[KEY_MAX], nbuf[24], lbuf[24];
	const char *argv[8 + DEAD_MAX];
	struct cache_reply *r;
	int argc = 0, rc = -1;

	snprintf(key, sizeof(key), "%s:{u%lld}", p->ns, (long long)uid);
	snprintf(nbuf, sizeof(nbuf), "%ld", n);
	snprintf(lbuf, sizeof(lbuf), "%ld", limit);
	argv[argc++] = NULL;
	argv[argc++] = NULL;
	argv[argc++] = "1";
	argv[argc++] = key;
	argv[argc++] = inst;
	argv[argc++] = nbuf;
	argv[argc++] = lbuf;
	argv[argc++] = linger && n > 0 ? "1" : "0";
	if (limit > 0)
		for (int i = 0; i < p->ndead && argc < (int)(sizeof(argv) / sizeof(argv[0])); i++)
			argv[argc++] = p->dead[i];
	r = script_run(&p->set, argc, argv);
	if (!r || cache_reply_type(r) != CACHE_ARRAY || cache_reply_count(r) != 2)
		goto out;
	*before = cache_reply_int(cache_reply_elem(r, 0));
	*after = cache_reply_int(cache_reply_elem(r, 1));
	rc = *before < 0 ? 0 : 1;
out:
	cache_reply_free(r);
	return rc;
}

/* Puts uid into this instance's user set before its field is written. */
static int add_to_set(struct presence *p, int64_t uid)
{
	char key[KEY_MAX], ubuf[24];
	const char *argv[] = {"SADD", key, ubuf};
	struct cache_reply *r;
	int ok;

	users_key(p, key, p->inst);
	snprintf(ubuf, sizeof(ubuf), "%lld", (long long)uid);
	r = cache_cmd(3, argv, NULL);
	ok = r && cache_reply_type(r) == CACHE_INT;
	cache_reply_free(r);
	return ok ? 0 : -1;
}

static void remove_from_set(const struct presence *p, const char *inst, const int64_t *uids, int n)
{
	char key[KEY_MAX], bufs[REAP_BATCH][24];
	const char *argv[2 + REAP_BATCH];

	if (n <= 0)
		return;
	users_key(p, key, inst);
	argv[0] = "SREM";
	argv[1] = key;
	for (int i = 0; i < n && i < REAP_BATCH; i++) {
		snprintf(bufs[i], sizeof(bufs[i]), "%lld", (long long)uids[i]);
		argv[2 + i] = bufs[i];
	}
	/* best effort: a member left behind costs the reaper one no-op later */
	cache_reply_free(cache_cmd(2 + (n < REAP_BATCH ? n : REAP_BATCH), argv, NULL));
}

static void transition(struct presence *p, int64_t uid, long long before, long long after)
{
	if (!p->announce)
		return;
	if (before == 0 && after > 0)
		p->announce(uid, 1, p->arg);
	else if (before > 0 && after == 0)
		p->announce(uid, 0, p->arg);
}

/* Writes the local count of uid to Redis now.  1 written, 0 refused by
 * limit (nothing changed), -1 Redis failed (the caller marks it dirty). */
static int sync_user(struct presence *p, int64_t uid, long n, long limit)
{
	long long before, after;
	int64_t *v;
	int rc;

	v = user_slot(p, uid);
	if (n > 0 && !(v && (*v & F_INSET))) {
		if (add_to_set(p, uid) < 0)
			return -1;
		v = user_slot(p, uid);
		if (v)
			*v |= F_INSET;
	}
	rc = write_count(p, p->inst, uid, n, v && (*v & F_LINGER), limit, &before, &after);
	if (rc <= 0)
		return rc;
	transition(p, uid, before, after);
	if (n == 0 && (v = user_slot(p, uid)) && (*v & F_INSET)) {
		*v &= ~F_INSET;
		remove_from_set(p, p->inst, &uid, 1);
	}
	return 1;
}

enum presence_admit presence_connect(struct presence *p, int64_t uid, long limit)
{
	int64_t *v = user_slot(p, uid);
	long n = v ? (long)(*v & COUNT_MASK) : 0;

	if (!v) {
		if (imap_put(&p->users, uid, 0) < 0)
			return PRESENCE_NOMEM;
		v = user_slot(p, uid);
	}
	/* a user still queued for a resync is written now too: the write
	 * sets the whole count, so the queued one repeats it harmlessly */
	if (writable(p)) {
		int rc = sync_user(p, uid, n + 1, limit);

		v = user_slot(p, uid);
		if (rc == 0) {
			/* refused at a first connection here: the set entry
			 * made for it goes too */
			if (n == 0 && (*v & F_INSET)) {
				*v &= ~F_INSET;
				remove_from_set(p, p->inst, &uid, 1);
			}
			maybe_forget(p, uid);
			return PRESENCE_FULL;
		}
		if (rc > 0) {
			*v = (*v & ~COUNT_MASK) | (n + 1);
			return PRESENCE_OK;
		}
	}
	/* Redis could not decide: the limit by the local count; counted here,
	 * written later; a first local connection is announced now (a
	 * repeated "online" is harmless) */
	if (limit > 0 && n >= limit) {
		maybe_forget(p, uid);
		return PRESENCE_FULL;
	}
	*v = (*v & ~COUNT_MASK) | (n + 1);
	mark_dirty(p, uid);
	if (n == 0 && p->announce)
		p->announce(uid, 1, p->arg);
	return PRESENCE_OK;
}

/* Writes uid's local count after a change; without Redis it is written
 * later (no "offline" without Redis: it would end calls of a user still
 * connected elsewhere). */
static void write_later_if_failed(struct presence *p, int64_t uid, long n)
{
	if (!writable(p) || sync_user(p, uid, n, 0) < 0) {
		mark_dirty(p, uid);
		return;
	}
	maybe_forget(p, uid);
}

/* One connection of uid here gone: the lingering one when `lingered`. */
static void leave(struct presence *p, int64_t uid, int lingered)
{
	int64_t *v = user_slot(p, uid);
	long n;

	if (!v || (*v & COUNT_MASK) == 0)
		return;
	n = (long)(*v & COUNT_MASK) - 1;
	*v = (*v & ~COUNT_MASK) | n;
	if (lingered || n == 0)
		*v &= ~F_LINGER;
	write_later_if_failed(p, uid, n);
}

void presence_disconnect(struct presence *p, int64_t uid)
{
	leave(p, uid, 0);
}

void presence_linger_gone(struct presence *p, int64_t uid)
{
	leave(p, uid, 1);
}

void presence_linger(struct presence *p, int64_t uid)
{
	int64_t *v = user_slot(p, uid);

	if (!v || (*v & COUNT_MASK) == 0 || (*v & F_LINGER))
		return;
	*v |= F_LINGER;
	write_later_if_failed(p, uid, (long)(*v & COUNT_MASK));
}

enum presence_admit presence_unlinger(struct presence *p, int64_t uid, long limit)
{
	int64_t *v = user_slot(p, uid);
	long n;

	if (!v || !(*v & F_LINGER))
		return presence_connect(p, uid, limit); /* nothing lingers: a new one */
	n = (long)(*v & COUNT_MASK);
	*v &= ~F_LINGER;
	if (writable(p)) {
		int rc = sync_user(p, uid, n, limit);

		v = user_slot(p, uid);
		if (rc == 0) {
			*v |= F_LINGER;
			return PRESENCE_FULL;
		}
		if (rc > 0)
			return PRESENCE_OK;
	}
	/* Redis could not decide: the limit by the local count (the lingering
	 * one not among them), written later */
	if (limit > 0 && n - 1 >= limit) {
		*v |= F_LINGER;
		return PRESENCE_FULL;
	}
	mark_dirty(p, uid);
	return PRESENCE_OK;
}

/* ---- tick ---- */

static int renew(struct presence *p, const char *mode)
{
	char lock[KEY_MAX], prefix[PRESENCE_BROKER_ID_MAX + 2], lease[24];
	const char *argv[] = {NULL, NULL, "2", p->registry, lock, p->inst, lease, mode, prefix};
	struct cache_reply *r;
	long long st = -1;

	lock_key(p, lock, p->inst);
	snprintf(prefix, sizeof(prefix), "%s/", p->broker);
	snprintf(lease, sizeof(lease), "%ld", p->lease_ms);
	r = script_run(&p->renew, 9, argv);
	if (!r || cache_reply_type(r) != CACHE_ARRAY || cache_reply_count(r) < 1)
		goto out;
	st = cache_reply_int(cache_reply_elem(r, 0));
	p->ndead = 0;
	p->claims_tried = 0;
	for (size_t i = 1; i < cache_reply_count(r) && p->ndead < DEAD_MAX; i++) {
		size_t len;
		const char *m = cache_reply_str(cache_reply_elem(r, i), &len);

		if (len > 0 && len < INSTANCE_MAX) {
			memcpy(p->dead[p->ndead], m, len);
			p->dead[p->ndead++][len] = '\0';
		}
	}
out:
	cache_reply_free(r);
	return (int)st;
}

/* A new instance name: the broker id and this start's epoch. */
static void new_instance(struct presence *p)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	snprintf(p->inst, sizeof(p->inst), "%s/%llx.%x", p->broker,
		 (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000, (unsigned)getpid());
}

static void do_renew(struct presence *p, uint64_t now)
{
	int st;

	p->next_renew = now + (uint64_t)p->renew_ms;
	if (!p->inst[0]) {
		new_instance(p);
		st = renew(p, "register");
		if (st != 1) {
			p->inst[0] = '\0';
			goto failed;
		}
		log_info("presence: registered as %s (lease %ld ms)", p->inst, p->lease_ms);
		dirty_all(p);
		goto held;
	}
	st = renew(p, "renew");
	if (st < 0)
		goto failed;
	if (st == 0) {
		log_warn("presence: lease of %s lost (reaped or Redis lost it); registering anew",
			 p->inst);
		p->inst[0] = '\0';
		p->healthy_since = 0;
		p->next_renew = now; /* register at the next tick */
		return;
	}
	if (st == 2) {
		log_warn("presence: lease of %s had ended; revived, writing every count again",
			 p->inst);
		dirty_all(p);
		p->healthy_since = now;
	}
held:
	if (p->failing)
		log_info("presence: Redis answers again (%s)", p->inst);
	p->failing = 0;
	p->renewed_at = now;
	if (!p->healthy_since)
		p->healthy_since = now;
	return;
failed:
	if (!p->failing)
		log_warn("presence: cannot renew the lease of %s (%s): counts kept locally",
			 p->inst[0] ? p->inst : p->broker, cache_last_error());
	p->failing = 1;
	p->healthy_since = 0;
}

/* Writes dirty users until the budget is spent.  0 when Redis failed. */
static int resync(struct presence *p, uint64_t deadline)
{
	while (p->dirty_head < p->ndirty) {
		int64_t uid = p->dirty[p->dirty_head];
		int64_t *v = user_slot(p, uid);

		if (v) {
			long n = (long)(*v & COUNT_MASK);

			*v &= ~F_DIRTY;
			/* sync_user adds or removes nothing in the table: v holds */
			if (sync_user(p, uid, n, 0) < 0) {
				*v |= F_DIRTY; /* still queued at the head */
				return 0;
			}
			maybe_forget(p, uid);
		}
		p->dirty_head++;
		if (mono_ms() >= deadline)
			break;
	}
	if (p->dirty_head == p->ndirty)
		p->dirty_head = p->ndirty = 0;
	return 1;
}

static int claim(struct presence *p, const char *target)
{
	char lock[KEY_MAX], ms[24];
	const char *argv[] = {NULL, NULL, "2", p->registry, lock, target, p->inst, ms};
	struct cache_reply *r;
	int ok;

	lock_key(p, lock, target);
	snprintf(ms, sizeof(ms), "%ld", p->lease_ms < 2000 ? 2000 : p->lease_ms);
	r = script_run(&p->claim, 8, argv);
	ok = r && cache_reply_type(r) == CACHE_INT && cache_reply_int(r) == 1;
	cache_reply_free(r);
	return ok;
}

static int finish(struct presence *p, const char *target)
{
	char lock[KEY_MAX], users[KEY_MAX];
	const char *argv[] = {NULL, NULL, "3", p->registry, lock, users, target, p->inst};
	struct cache_reply *r;
	int ok;

	lock_key(p, lock, target);
	users_key(p, users, target);
	r = script_run(&p->finish, 8, argv);
	ok = r && cache_reply_type(r) == CACHE_INT && cache_reply_int(r) == 1;
	cache_reply_free(r);
	return ok;
}

/* One batch of the instance being reaped: its users' fields set to 0,
 * "offline" for those left with none.  0 when Redis failed or the lock
 * was lost. */
static int reap_batch(struct presence *p)
{
	char key[KEY_MAX], count[8];
	const char *argv[] = {"SRANDMEMBER", key, count};
	int64_t uids[REAP_BATCH];
	struct cache_reply *r;
	int n = 0, offline = 0, ok;

	if (!claim(p, p->reaping)) {
		p->reaping[0] = '\0';
		return 0;
	}
	users_key(p, key, p->reaping);
	snprintf(count, sizeof(count), "%d", REAP_BATCH);
	r = cache_cmd(3, argv, NULL);
	ok = r && cache_reply_type(r) == CACHE_ARRAY;
	for (size_t i = 0; ok && i < cache_reply_count(r) && n < REAP_BATCH; i++) {
		long long uid = cache_reply_int(cache_reply_elem(r, i));

		if (uid > 0)
			uids[n++] = uid;
	}
	cache_reply_free(r); /* the ids are copied: the writes below need no reply */
	if (!ok)
		return 0;
	for (int i = 0; i < n; i++) {
		long long before, after;

		if (write_count(p, p->reaping, uids[i], 0, 0, 0, &before, &after) < 0)
			return 0;
		offline += before > 0 && after == 0;
		transition(p, uids[i], before, after);
	}
	remove_from_set(p, p->reaping, uids, n);
	if (n == 0 && finish(p, p->reaping)) {
		log_info("presence: %s reaped", p->reaping);
		p->reaping[0] = '\0';
	} else if (n) {
		log_debug("presence: reaping %s: %d users, %d offline", p->reaping, n, offline);
	}
	return 1;
}

void presence_tick(struct presence *p)
{
	uint64_t now = mono_ms(), deadline = now + TICK_BUDGET_MS;

	if (now >= p->next_renew)
		do_renew(p, now);
	if (!writable(p))
		return;
	if (!resync(p, deadline) || mono_ms() >= deadline)
		return;
	/* others' users only once our own lease held for a whole lease (after
	 * a Redis outage every broker renews first); our own old instances
	 * (a restart) at once */
	if (!p->reaping[0] && !p->claims_tried) {
		/* once per renewal: a lock held by another broker is not
		 * asked for again every tick */
		p->claims_tried = 1;
		for (int i = 0; i < p->ndead; i++) {
			size_t bl = strlen(p->broker);
			int mine = strncmp(p->dead[i], p->broker, bl) == 0 && p->dead[i][bl] == '/';

			if (!mine &&
			    (!p->healthy_since || now - p->healthy_since < (uint64_t)p->lease_ms))
				continue;
			if (claim(p, p->dead[i])) {
				snprintf(p->reaping, sizeof(p->reaping), "%s", p->dead[i]);
				log_info("presence: %s reaping %s (lease ended)", p->inst,
					 p->reaping);
				break;
			}
		}
	}
	while (p->reaping[0] && mono_ms() < deadline)
		if (!reap_batch(p))
			break;
	/* the list is refreshed at the next renewal; an instance finished is
	 * not claimed again (the claim finds it gone) */
}

void presence_close(struct presence *p, int release)
{
	if (!p)
		return;
	if (release && p->inst[0] && renew(p, "release") >= 0)
		log_info("presence: %s released its lease", p->inst);
	imap_free(&p->users);
	free(p->dirty);
	free(p);
}

long presence_local(struct presence *p, int64_t uid)
{
	int64_t *v = user_slot(p, uid);

	return v ? (long)(*v & COUNT_MASK) : 0;
}

long presence_users(struct presence *p)
{
	long n = 0;

	for (size_t i = 0; i < p->users.cap; i++)
		n += p->users.slots[i].key && (p->users.slots[i].val & COUNT_MASK);
	return n;
}

const char *presence_instance(struct presence *p)
{
	return p->inst;
}

int presence_synced(struct presence *p)
{
	return writable(p) && p->dirty_head == p->ndirty;
}

int presence_online(int64_t uid, const char *key_prefix)
{
	const char *ns = key_prefix ? key_prefix : "th:presence";
	char key[KEY_MAX], reg[KEY_MAX];
	const char *argv[3];
	struct cache_reply *h = NULL, *t = NULL, *z;
	long long now_ms;
	size_t i, n;
	int rc = -1;

	snprintf(key, sizeof(key), "%s:{u%lld}", ns, (long long)uid);
	snprintf(reg, sizeof(reg), "%s:{brokers}:live", ns);
	argv[0] = "HGETALL";
	argv[1] = key;
	h = cache_cmd(2, argv, NULL);
	if (!h || cache_reply_type(h) != CACHE_ARRAY)
		goto out;
	n = cache_reply_count(h);
	rc = 0;
	if (n == 0)
		goto out;
	argv[0] = "TIME";
	t = cache_cmd(1, argv, NULL);
	if (!t || cache_reply_type(t) != CACHE_ARRAY || cache_reply_count(t) != 2) {
		rc = -1;
		goto out;
	}
	now_ms = strtoll(cache_reply_str(cache_reply_elem(t, 0), NULL), NULL, 10) * 1000 +
		 strtoll(cache_reply_str(cache_reply_elem(t, 1), NULL), NULL, 10) / 1000;
	for (i = 0; i + 1 < n && rc == 0; i += 2) {
		const char *inst = cache_reply_str(cache_reply_elem(h, i), NULL);
		const char *count = cache_reply_str(cache_reply_elem(h, i + 1), NULL);

		if (!inst || inst[0] == '~' || !count || strtol(count, NULL, 10) <= 0)
			continue; /* "~<inst>": how many linger there, counted in its field */
		argv[0] = "ZSCORE";
		argv[1] = reg;
		argv[2] = inst;
		z = cache_cmd(3, argv, NULL);
		if (!z) {
			rc = -1;
			break;
		}
		if (cache_reply_type(z) == CACHE_STR &&
		    strtod(cache_reply_str(z, NULL), NULL) > (double)now_ms)
			rc = 1;
		cache_reply_free(z);
	}
out:
	cache_reply_free(h);
	cache_reply_free(t);
	return rc;
}
