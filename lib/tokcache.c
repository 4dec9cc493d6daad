/* tokcache: 4-way set-associative table of SHA-256(token) -> claims. */
#include "tokcache.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WAYS 4
#define MAX_ENTRIES (1u << 22)

struct entry {
	unsigned char digest[32];
	struct token_claims claims; /* expires_at 0: empty */
};

static struct entry *table;
static size_t nsets; /* power of two */
static tokcache_revoked_fn revoked_fn;
static EVP_MD *sha256;
static EVP_MD_CTX *mdctx;
static struct tokcache_stats stats;

int tokcache_init(size_t entries, tokcache_revoked_fn revoked)
{
	size_t n = WAYS;

	tokcache_close();
	while (n < entries && n < MAX_ENTRIES)
		n <<= 1;
	table = calloc(n, sizeof(*table));
	sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
	mdctx = EVP_MD_CTX_new();
	if (!table || !sha256 || !mdctx) {
		tokcache_close();
		return -1;
	}
	nsets = n / WAYS;
	revoked_fn = revoked;
	stats.entries = n;
	return 0;
}

void tokcache_close(void)
{
	free(table);
	table = NULL;
	EVP_MD_free(sha256);
	sha256 = NULL;
	EVP_MD_CTX_free(mdctx);
	mdctx = NULL;
	nsets = 0;
	memset(&stats, 0, sizeof(stats));
}

static int digest_of(const char *token, size_t len, unsigned char out[32])
{
	unsigned int n = 0;

	return EVP_DigestInit_ex2(mdctx, sha256, NULL) == 1 &&
			       EVP_DigestUpdate(mdctx, token, len) == 1 &&
			       EVP_DigestFinal_ex(mdctx, out, &n) == 1 && n == 32
		       ? 0
		       : -1;
}

static struct entry *set_of(const unsigned char d[32])
{
	uint64_t h;

	memcpy(&h, d, sizeof(h)); /* a digest's bytes are uniform */
	return &table[(h & (nsets - 1)) * WAYS];
}

/* The revocation check of a token that is valid by itself. */
static enum th_err live(const struct token_claims *c)
{
	int r = revoked_fn ? revoked_fn(c->session_id) : 0;

	if (r < 0)
		return TH_EUNAVAILABLE;
	return r ? TH_EUNAUTHORIZED : TH_OK;
}

static void insert(struct entry *set, const unsigned char d[32], const struct token_claims *c,
		   int64_t now)
{
	struct entry *victim = &set[0];

	for (int i = 0; i < WAYS; i++) {
		if (set[i].claims.expires_at <= now) { /* empty or expired */
			victim = &set[i];
			break;
		}
		if (set[i].claims.expires_at < victim->claims.expires_at)
			victim = &set[i];
	}
	/* an expired entry still counts as used: it is replaced in place */
	if (victim->claims.expires_at == 0)
		stats.used++;
	else if (victim->claims.expires_at > now)
		stats.evictions++;
	memcpy(victim->digest, d, 32);
	victim->claims = *c;
}

enum th_err tokcache_verify(const char *token, size_t len, struct token_claims *out)
{
	unsigned char d[32];
	struct entry *set;
	int64_t now = (int64_t)time(NULL);
	enum th_err rc;

	if (!table || len == 0 || len > TOKEN_MAX_LEN || digest_of(token, len, d) < 0)
		return token_check_signed(token, len, out) == TH_OK ? live(out) : TH_EUNAUTHORIZED;
	set = set_of(d);
	for (int i = 0; i < WAYS; i++) {
		if (set[i].claims.expires_at == 0 || CRYPTO_memcmp(set[i].digest, d, 32) != 0)
			continue;
		if (now >= set[i].claims.expires_at) {
			/* expired: the token is refused, its entry freed */
			memset(&set[i], 0, sizeof(set[i]));
			stats.used--;
			return TH_EUNAUTHORIZED;
		}
		stats.hits++;
		*out = set[i].claims;
		return live(out);
	}
	stats.misses++;
	rc = token_check_signed(token, len, out);
	if (rc != TH_OK)
		return rc;
	insert(set, d, out, now);
	return live(out);
}

void tokcache_stats(struct tokcache_stats *out)
{
	*out = stats;
}
