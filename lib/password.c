/* password: argon2id through libsodium (crypto_pwhash_str).  libsodium's
 * optimized argon2 measured faster here than Debian's reference libargon2,
 * even though it maps a fresh work area per call. */
#include "password.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "metrics.h"
#include "slots.h"

static unsigned long long opslimit;
static size_t memlimit;
_Static_assert(PASSWORD_HASH_MAX >= crypto_pwhash_STRBYTES, "hash buffer too small");

static char dummy[crypto_pwhash_STRBYTES];

/* the host-wide hash limit (password_limit_init); NULL: none */
static struct slots *hash_slots;
static long hash_wait_ms;
static int waits_counter = -1, busy_counter = -1;

int password_init(void)
{
	unsigned char rnd[32];

	if (sodium_init() < 0)
		return -1;
	opslimit = (unsigned long long)cfg_int("TH_ARGON2_OPSLIMIT", 2, 1, 64);
	memlimit = (size_t)cfg_int("TH_ARGON2_MEMLIMIT", 19922944, 8192, (long long)1 << 32);
	randombytes_buf(rnd, sizeof(rnd));
	/* the dummy's password is 32 random bytes nobody can know */
	if (crypto_pwhash_str_alg(dummy, (const char *)rnd, sizeof(rnd), opslimit, memlimit,
				  crypto_pwhash_ALG_ARGON2ID13) != 0)
		return -1;
	sodium_memzero(rnd, sizeof(rnd));
	return 0;
}

int password_limit_init(const char *var_dir)
{
	char path[4096];
	long online = sysconf(_SC_NPROCESSORS_ONLN);
	int limit;

	if (online < 1)
		online = 1;
	if (online > SLOTS_MAX)
		online = SLOTS_MAX;
	limit = (int)cfg_int("TH_ARGON2_CONCURRENCY", online, 0, SLOTS_MAX);
	hash_wait_ms = (long)cfg_int("TH_ARGON2_WAIT_MS", 10000, 1, 60000);
	if (limit == 0 || !var_dir) {
		log_info("argon2id: no host-wide limit on concurrent hashes");
		return 0;
	}
	if (snprintf(path, sizeof(path), "%s/run/argon2.slots", var_dir) >= (int)sizeof(path)) {
		log_error("argon2id: TH_VAR_DIR too long");
		return -1;
	}
	hash_slots = slots_open(path, limit);
	if (!hash_slots) {
		log_error("argon2id: cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	waits_counter = metrics_counter("argon2_slot_waits_total");
	busy_counter = metrics_counter("argon2_slot_busy_total");
	log_info("argon2id: at most %d hashes at once on this host", limit);
	return 0;
}

void password_limit_close(void)
{
	slots_close(hash_slots);
	hash_slots = NULL;
}

/* A slot of the host-wide limit: its index, SLOTS_MAX when there is no
 * limit, or PASSWORD_BUSY when none freed up within TH_ARGON2_WAIT_MS. */
static int slot_take(void)
{
	int slot, waited;

	if (!hash_slots)
		return SLOTS_MAX;
	slot = slots_acquire(hash_slots, hash_wait_ms, &waited);
	if (waited)
		metrics_add(waits_counter, 1);
	if (slot < 0) {
		metrics_add(busy_counter, 1);
		log_warn("argon2id: no hash slot: %s", strerror(errno));
		return PASSWORD_BUSY;
	}
	return slot;
}

static void slot_give(int slot)
{
	if (hash_slots && slot != SLOTS_MAX)
		slots_release(hash_slots, slot);
}

int password_hash(const char *password, char *out, size_t outsize)
{
	int slot, rc;

	if (outsize < crypto_pwhash_STRBYTES)
		return -1;
	slot = slot_take();
	if (slot == PASSWORD_BUSY)
		return PASSWORD_BUSY;
	rc = crypto_pwhash_str_alg(out, password, strlen(password), opslimit, memlimit,
				   crypto_pwhash_ALG_ARGON2ID13) == 0
		     ? 0
		     : -1;
	slot_give(slot); /* nothing between take and give can return early */
	return rc;
}

int password_verify(const char *hash, const char *password)
{
	size_t n = strlen(password);
	int slot, ok;

	/* the unknown login waits for a slot like any other: the same time */
	slot = slot_take();
	if (slot == PASSWORD_BUSY)
		return PASSWORD_BUSY;
	if (!hash || !*hash || strlen(hash) >= crypto_pwhash_STRBYTES) {
		/* same work as a real check; the dummy never matches */
		int dummy_ok = crypto_pwhash_str_verify(dummy, password, n) == 0;

		ok = dummy_ok && 0;
	} else {
		/* libsodium compares the tags in constant time */
		ok = crypto_pwhash_str_verify(hash, password, n) == 0;
	}
	slot_give(slot); /* nothing between take and give can return early */
	return ok;
}
