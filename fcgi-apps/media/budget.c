/* budget: how many images are processed at once, per user and per host.
 *
 * Decoding an image costs CPU and pixel cache in proportion to its pixels:
 * a 49 MP PNG of 160 KB is ~10 s of a core and ~1.3 GB of pixel cache.
 * Two bounds keep one user from taking the pool (issue 17, point 5):
 *
 *  - per user, across workers and hosts: at most TH_MEDIA_IMAGE_PER_USER
 *    (API.md: 2) images in processing at once, a counter in Redis taken
 *    before the header is even pinged; the third gets 429 at once.  A worker
 *    that dies mid-image leaves its count behind for at most
 *    TH_MEDIA_IMAGE_HOLD_S (the key's lifetime, refreshed by every take).
 *  - per host: a large image (over TH_MEDIA_HEAVY_PIXELS) also needs one of
 *    TH_MEDIA_HEAVY_CONCURRENCY host-wide slots (lib/slots, default half the
 *    cores, at least one), waiting at most TH_MEDIA_HEAVY_WAIT_MS for one;
 *    beyond that 429 with Retry-After.  Small images take no slot: they are
 *    over in milliseconds, and making them queue behind large ones is what
 *    would make another user wait.  So the cores not given to large images
 *    stay free for everyone else's requests. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cache.h"
#include "config.h"
#include "log.h"
#include "media.h"
#include "metrics.h"
#include "reply.h"
#include "slots.h"

static struct slots *heavy;
static long long per_user, hold_ms, heavy_pixels, heavy_wait_ms;
static int c_user_refused = -1, c_host_refused = -1, c_host_waits = -1;

/* INCR, refused (and given back) over the limit; the key lives hold_ms. */
static const char take_script[] =
	"local c = redis.call('INCR', KEYS[1]) "
	"if c > tonumber(ARGV[1]) then redis.call('DECR', KEYS[1]) return 0 end "
	"redis.call('PEXPIRE', KEYS[1], ARGV[2]) "
	"return c";
static const char give_script[] = "local c = redis.call('DECR', KEYS[1]) "
				  "if c <= 0 then redis.call('DEL', KEYS[1]) end "
				  "return c";

int budget_init(void)
{
	char path[4096];
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	long long limit;

	if (cores < 1)
		cores = 1;
	per_user = cfg_int("TH_MEDIA_IMAGE_PER_USER", 2, 1, 1000);
	hold_ms = cfg_int("TH_MEDIA_IMAGE_HOLD_S", 300, 10, 86400) * 1000;
	heavy_pixels = cfg_int("TH_MEDIA_HEAVY_PIXELS", 4000000, 0, 1LL << 40);
	heavy_wait_ms = cfg_int("TH_MEDIA_HEAVY_WAIT_MS", 1000, 0, 60000);
	limit = cfg_int("TH_MEDIA_HEAVY_CONCURRENCY", cores / 2 > 0 ? cores / 2 : 1, 1, SLOTS_MAX);
	if (snprintf(path, sizeof(path), "%s/run/image.slots", media_cfg.var_dir) >=
	    (int)sizeof(path)) {
		fprintf(stderr, "media: TH_VAR_DIR too long\n");
		return -1;
	}
	heavy = slots_open(path, (int)limit);
	if (!heavy) {
		fprintf(stderr, "media: cannot open %s: %s\n", path, strerror(errno));
		return -1;
	}
	c_user_refused = metrics_counter("image_user_busy_total");
	c_host_refused = metrics_counter("image_host_busy_total");
	c_host_waits = metrics_counter("image_host_waits_total");
	log_info("images: %lld at once per user; over %lld pixels, %lld at once on this host",
		 per_user, heavy_pixels, limit);
	return 0;
}

void budget_fini(void)
{
	slots_close(heavy);
	heavy = NULL;
}

static void user_key(const struct http_req *req, char *key, size_t size)
{
	snprintf(key, size, "th:media:images:%lld", (long long)req->user_id);
}

int budget_user_take(struct http_req *req, struct budget *b)
{
	char key[64], max[24], ms[24];
	const char *argv[] = {"EVAL", take_script, "1", key, max, ms};
	struct cache_reply *r;
	long long got;

	b->user_taken = 0;
	b->slot = -1;
	user_key(req, key, sizeof(key));
	snprintf(max, sizeof(max), "%lld", per_user);
	snprintf(ms, sizeof(ms), "%lld", hold_ms);
	r = cache_own(req, cache_cmd(6, argv, NULL));
	if (!r || cache_reply_type(r) != CACHE_INT) {
		http_reply_error(req, TH_EUNAVAILABLE, "cannot count images in processing now",
				 NULL);
		return -1;
	}
	got = cache_reply_int(r);
	if (got <= 0) {
		char msg[96];

		metrics_add(c_user_refused, 1);
		snprintf(msg, sizeof(msg), "at most %lld images of yours are processed at once",
			 per_user);
		http_reply_error(req, TH_ERATELIMITED, msg, NULL);
		http_set_header(req, "Retry-After", "2");
		return -1;
	}
	b->user_taken = 1;
	return 0;
}

int budget_host_take(struct http_req *req, unsigned long long pixels, struct budget *b)
{
	int waited = 0;

	if (pixels <= (unsigned long long)heavy_pixels || !heavy)
		return 0;
	b->slot = slots_acquire(heavy, (long)heavy_wait_ms, &waited);
	if (waited)
		metrics_add(c_host_waits, 1);
	if (b->slot < 0) {
		metrics_add(c_host_refused, 1);
		log_info("images: no host slot for %llu pixels within %lld ms: %s", pixels,
			 heavy_wait_ms, strerror(errno));
		http_reply_error(req, TH_ERATELIMITED,
				 "too many large images are being processed; try again shortly",
				 NULL);
		http_set_header(req, "Retry-After", "5");
		return -1;
	}
	return 0;
}

void budget_release(struct http_req *req, struct budget *b)
{
	char key[64];
	const char *argv[] = {"EVAL", give_script, "1", key};

	if (b->slot >= 0 && heavy)
		slots_release(heavy, b->slot);
	b->slot = -1;
	if (!b->user_taken)
		return;
	b->user_taken = 0;
	user_key(req, key, sizeof(key));
	/* a lost give-back holds one of the user's places until the key's
	 * lifetime ends: logged, never fatal */
	{
		struct cache_reply *r = cache_own(req, cache_cmd(4, argv, NULL));

		if (!r)
			log_warn("images: cannot give back a place of user %lld: %s",
				 (long long)req->user_id, cache_last_error());
	}
}
