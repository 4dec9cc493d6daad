/* shm: see shm.h. */
#include "shm.h"

#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <string.h>
#include <sys/mman.h>

/* a slot of the address table; linear probing, a slot once used keeps its
 * key (it is reused by a new address only when its counts are all zero and
 * the new address is nowhere in its probe window) */
struct addr_slot {
	uint8_t key[16];
	uint16_t n[SHM_MAX_WORKERS];
	uint8_t used;
};

#define PROBE_MAX 64

struct shm {
	pthread_mutex_t lock; /* the address table; robust: a dying holder frees it */
	/* SipHash key of the address table, random at each start: a client
	 * choosing its addresses (a /48 of IPv6 holds 65,536 /64s) cannot aim
	 * them at one probe window and have others refused */
	unsigned char hash_key[crypto_shorthash_KEYBYTES];
	_Atomic int64_t edge_down[SHM_MAX_EDGES];
	struct shm_worker w[SHM_MAX_WORKERS];
	struct addr_slot slots[SHM_ADDR_SLOTS];
};

struct shm *shm_create(void)
{
	pthread_mutexattr_t a;
	struct shm *s = mmap(NULL, sizeof(*s), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
			     -1, 0);
	int e;

	if (s == MAP_FAILED)
		return NULL;
	if (sodium_init() < 0) {
		e = EIO;
		goto fail;
	}
	randombytes_buf(s->hash_key, sizeof(s->hash_key));
	if ((e = pthread_mutexattr_init(&a)) != 0)
		goto fail;
	if ((e = pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED)) != 0 ||
	    (e = pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST)) != 0 ||
	    (e = pthread_mutex_init(&s->lock, &a)) != 0) {
		pthread_mutexattr_destroy(&a);
		goto fail;
	}
	pthread_mutexattr_destroy(&a);
	return s;
fail:
	munmap(s, sizeof(*s));
	errno = e;
	return NULL;
}

struct shm_worker *shm_worker(struct shm *s, int worker)
{
	return &s->w[worker];
}

static void lock(struct shm *s)
{
	/* a worker died holding it: the table is consistent at every step
	 * that can be interrupted (one counter changes at a time) */
	if (pthread_mutex_lock(&s->lock) == EOWNERDEAD)
		pthread_mutex_consistent(&s->lock);
}

void shm_worker_reset(struct shm *s, int worker)
{
	struct shm_worker *w = &s->w[worker];
	size_t i;

	for (i = 0; i < ST_GAUGES; i++)
		atomic_store(&w->st[i], 0);
	for (i = 0; i < SHM_MAX_EDGES; i++)
		atomic_store(&w->per_edge[i], 0);
	lock(s);
	for (i = 0; i < SHM_ADDR_SLOTS; i++)
		s->slots[i].n[worker] = 0;
	pthread_mutex_unlock(&s->lock);
}

int64_t shm_edge_down_until(struct shm *s, int edge)
{
	return atomic_load_explicit(&s->edge_down[edge], memory_order_relaxed);
}

void shm_edge_mark_down(struct shm *s, int edge, int64_t until_ms)
{
	atomic_store_explicit(&s->edge_down[edge], until_ms, memory_order_relaxed);
}

static uint32_t addr_hash(const struct shm *s, const uint8_t a[16])
{
	unsigned char h[crypto_shorthash_BYTES];
	uint32_t v;

	crypto_shorthash(h, a, 16, s->hash_key);
	memcpy(&v, h, sizeof(v));
	return v;
}

/* What the cap counts: an IPv4 address, or an IPv6 address's /64 (one
 * host or household: a client holds 2^64 addresses of its /64). */
static void limit_key(uint8_t out[16], const uint8_t a[16])
{
	static const uint8_t v4_prefix[12] = {[10] = 0xff, [11] = 0xff};

	memcpy(out, a, 16);
	if (memcmp(a, v4_prefix, 12) != 0)
		memset(out + 8, 0, 8);
}

static unsigned slot_total(const struct addr_slot *sl)
{
	unsigned t = 0;
	int i;

	for (i = 0; i < SHM_MAX_WORKERS; i++)
		t += sl->n[i];
	return t;
}

/* the slot of addr, or one to take for it; NULL when the window is full */
static struct addr_slot *find(struct shm *s, const uint8_t addr[16], int create)
{
	uint8_t a[16];
	uint32_t h, i;
	struct addr_slot *free_slot = NULL;

	limit_key(a, addr);
	h = addr_hash(s, a);
	for (i = 0; i < PROBE_MAX; i++) {
		struct addr_slot *sl = &s->slots[(h + i) & (SHM_ADDR_SLOTS - 1)];

		if (!sl->used) {
			if (!free_slot)
				free_slot = sl;
			break; /* never used: addr is not further on */
		}
		if (memcmp(sl->key, a, 16) == 0)
			return sl;
		if (!free_slot && slot_total(sl) == 0)
			free_slot = sl;
	}
	if (!create || !free_slot)
		return NULL;
	memcpy(free_slot->key, a, 16);
	memset(free_slot->n, 0, sizeof(free_slot->n));
	free_slot->used = 1;
	return free_slot;
}

int shm_addr_acquire(struct shm *s, int worker, const uint8_t addr[16], unsigned cap)
{
	struct addr_slot *sl;
	int r = -2;

	lock(s);
	sl = find(s, addr, 1);
	if (!sl)
		goto out;
	r = -1;
	if (slot_total(sl) >= cap || sl->n[worker] == UINT16_MAX)
		goto out;
	sl->n[worker]++;
	r = 0;
out:
	pthread_mutex_unlock(&s->lock);
	return r;
}

void shm_addr_release(struct shm *s, int worker, const uint8_t addr[16])
{
	struct addr_slot *sl;

	lock(s);
	sl = find(s, addr, 0);
	if (sl && sl->n[worker])
		sl->n[worker]--;
	pthread_mutex_unlock(&s->lock);
}

const char *shm_reason_name(enum shm_reason r)
{
	static const char *const names[R_N] = {
		"client_gone",    "edge_gone",         "handshake_timeout",
		"idle",           "slow_reader",       "ping_flood",
		"packet_too_big", "frame_too_big",     "not_binary",
		"protocol",       "connect_refused",   "no_edge",
		"bad_request",    "no_subprotocol",    "bad_origin",
		"not_found",      "request_too_large", "per_address",
		"max_conns",      "metrics",           "error",
		"shutdown",
	};

	return r < R_N ? names[r] : "?";
}
