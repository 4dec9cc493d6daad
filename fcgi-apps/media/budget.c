/* budget: how many images are processed at once, per user and per host,
 * and how much large-image work one user may ask for.
 *
 * Decoding an image costs CPU and pixel cache in proportion to its pixels:
 * a 49 MP PNG of 160 KB is ~10 s of a core and ~1.3 GB of pixel cache.
 * These bounds keep one user from taking the pool (issue 17, point 5):
 *
 *  - per user, across workers and hosts: at most TH_MEDIA_IMAGE_PER_USER
 *    (API.md: 2) images in processing at once, taken before the header is
 *    even pinged; the third gets 429 at once.
 *  - per user, large images (over TH_MEDIA_HEAVY_PIXELS): one at a time (a
 *    second one waits, within TH_MEDIA_HEAVY_WAIT_MS, for the first), and
 *    at most TH_MEDIA_HEAVY_MP_PER_MIN megapixels of them a minute (a token
 *    bucket of one minute's worth; an image larger than the bucket passes
 *    when it is full, so every valid image can pass); beyond it 429 with
 *    Retry-After saying when the image would fit.  Without these a user
 *    with a stream of 49 MP PNGs holds the host's large-image slots for
 *    good and everyone else's large images wait or fail.
 *  - per host: a large image also needs one of TH_MEDIA_HEAVY_CONCURRENCY
 *    host-wide slots (lib/slots, default half the cores, at least one),
 *    waiting for one until the same TH_MEDIA_HEAVY_WAIT_MS deadline; beyond
 *    that 429 with Retry-After.  Small images take no slot: they are over in
 *    milliseconds, and making them queue behind large ones is what would
 *    make another user wait.  So the cores not given to large images stay
 *    free for everyone else's requests.
 *
 * A hold in Redis (a place, or the user's large-image place) is one member
 * of a sorted set per user, named after the job ("host:pid:seq") and scored
 * with the time it lapses: TH_MEDIA_IMAGE_HOLD_S after it was taken or last
 * kept alive.  The job keeps its holds alive while it runs (budget_keepalive,
 * called from ImageMagick's progress monitor), so a job longer than the
 * hold keeps its place; a hold whose worker died lapses on its own, and
 * sooner on its own host: a take that is refused looks at the holds of its
 * host and drops those whose worker is gone (no such pid) or is this very
 * worker (it runs one request at a time, so an older hold of its own is a
 * give-back that was lost).  Each hold lapses by itself, so a user who keeps
 * retrying never keeps a dead worker's hold alive.  Hosts sharing a Redis
 * must have distinct host names (a pid is looked at only on its host). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cache.h"
#include "config.h"
#include "log.h"
#include "media.h"
#include "metrics.h"
#include "mono.h"
#include "pid.h"
#include "reply.h"
#include "slots.h"

/* stale holds dropped in one retry of a take */
#define STALE_MAX 16
/* how often a large image waiting for the user's first one asks again */
#define HEAVY_POLL_MS 50

static struct slots *heavy;
static long long per_user, hold_ms, heavy_pixels, heavy_wait_ms, heavy_mp_per_min;
static int c_user_refused = -1, c_host_refused = -1, c_host_waits = -1, c_heavy_busy = -1,
	   c_heavy_rate = -1;
static char host[64];
static unsigned long long job_seq;


/* KEYS[1]: holds; ARGV: job, at most, lease ms, then stale holds to drop.
 * 1 taken, 0 refused (nothing changed but lapsed and stale holds). */
static struct cache_script take_s =
	{CACHE_LUA_NOW "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now) "
		       "for i = 4, #ARGV do redis.call('ZREM', KEYS[1], ARGV[i]) end "
		       "if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end "
		       "redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1]) "
		       "redis.call('PEXPIRE', KEYS[1], ARGV[3]) "
		       "return 1",
	 ""};

/* KEYS[1]: large-image holds, KEYS[2]: the bucket's theoretical arrival
 * time (GCRA, as lib/ratelimit.c); ARGV: job, lease ms, megapixels, ms a
 * megapixel, burst (megapixels), then stale holds to drop.  {1, 0} taken;
 * {0, 0} another large image of the user runs; {0, ms} over the budget for
 * ms more.  The bucket refuses only when it is not empty, so an image
 * larger than the burst passes when it is. */
static struct cache_script heavy_take_s =
	{CACHE_LUA_NOW
	 "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now) "
	 "for i = 6, #ARGV do redis.call('ZREM', KEYS[1], ARGV[i]) end "
	 "if redis.call('ZCARD', KEYS[1]) >= 1 then return {0, 0} end "
	 "local mp, iv, burst = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]) "
	 "local tat = tonumber(redis.call('GET', KEYS[2]) or '0') "
	 "if tat < now then tat = now end "
	 "local new = tat + mp * iv "
	 "if tat > now and new - now > burst * iv then "
	 "  return {0, math.min(new - burst * iv - now, tat - now)} end "
	 "redis.call('SET', KEYS[2], new, 'PX', new - now) "
	 "redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1]) "
	 "redis.call('PEXPIRE', KEYS[1], ARGV[2]) "
	 "return {1, 0}",
	 ""};

/* The large-image hold given back, and its megapixels with it (the host had
 * no slot: the image was not processed).  KEYS as heavy_take_s; ARGV: job,
 * megapixels, ms a megapixel. */
static struct cache_script heavy_refund_s =
	{CACHE_LUA_NOW "redis.call('ZREM', KEYS[1], ARGV[1]) "
		       "local tat = tonumber(redis.call('GET', KEYS[2]) or '0') "
		       "local new = tat - tonumber(ARGV[2]) * tonumber(ARGV[3]) "
		       "if new <= now then redis.call('DEL', KEYS[2]) "
		       "else redis.call('SET', KEYS[2], new, 'PX', new - now) end "
		       "return 1",
	 ""};

/* KEYS[1]: places, KEYS[2]: large-image holds; ARGV: job, lease ms, and
 * '1' when it holds a large-image place.  Re-adds a hold that lapsed: the
 * job is running, so it counts. */
static struct cache_script keep_s =
	{CACHE_LUA_NOW "redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1]) "
		       "redis.call('PEXPIRE', KEYS[1], ARGV[2]) "
		       "if ARGV[3] == '1' then "
		       "  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), ARGV[1]) "
		       "  redis.call('PEXPIRE', KEYS[2], ARGV[2]) end "
		       "return 1",
	 ""};

/* KEYS as keep_s; ARGV: job. */
static struct cache_script give_s = {"redis.call('ZREM', KEYS[1], ARGV[1]) "
				     "redis.call('ZREM', KEYS[2], ARGV[1]) "
				     "return 1",
				     ""};

int budget_init(void)
{
	char path[4096];
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	long long limit;

	if (cores < 1)
		cores = 1;
	per_user = cfg_int("TH_MEDIA_IMAGE_PER_USER", 2, 1, 1000);
	hold_ms = cfg_int("TH_MEDIA_IMAGE_HOLD_S", 60, 10, 86400) * 1000;
	heavy_pixels = cfg_int("TH_MEDIA_HEAVY_PIXELS", 4000000, 0, 1LL << 40);
	heavy_wait_ms = cfg_int("TH_MEDIA_HEAVY_WAIT_MS", 1000, 0, 60000);
	/* at ~0.2 s of a core a megapixel, 200 MP a minute is ~40 s of one core:
	 * a stream of large images from one user leaves the slot free a third
	 * of the time; 16 12-MP photos a minute */
	heavy_mp_per_min = cfg_int("TH_MEDIA_HEAVY_MP_PER_MIN", 200, 1, 60000);
	limit = cfg_int("TH_MEDIA_HEAVY_CONCURRENCY", cores / 2 > 0 ? cores / 2 : 1, 1, SLOTS_MAX);
	/* a job waiting for a slot does not keep its holds alive: they must
	 * outlast the wait and the keepalive interval (a quarter of a hold) */
	if (hold_ms < 2 * heavy_wait_ms + 10000) {
		hold_ms = 2 * heavy_wait_ms + 10000;
		log_info("images: TH_MEDIA_IMAGE_HOLD_S raised to %lld s to outlast "
			 "TH_MEDIA_HEAVY_WAIT_MS",
			 hold_ms / 1000);
	}
	if (gethostname(host, sizeof(host) - 1) < 0 || !host[0])
		snprintf(host, sizeof(host), "unknown");
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
	c_heavy_busy = metrics_counter("image_user_heavy_busy_total");
	c_heavy_rate = metrics_counter("image_user_heavy_rate_total");
	log_info("images: %lld at once per user; over %lld pixels, one at a time and %lld MP a "
		 "minute per user, %lld at once on this host",
		 per_user, heavy_pixels, heavy_mp_per_min, limit);
	return 0;
}

void budget_fini(void)
{
	slots_close(heavy);
	heavy = NULL;
}

/* The user's keys, one Cluster slot for all ({uid}): the scripts use two */
static void places_key(const struct http_req *req, char *key, size_t size)
{
	snprintf(key, size, "th:media:images:{%lld}", (long long)req->user_id);
}

static void heavy_key(const struct http_req *req, char *key, size_t size)
{
	snprintf(key, size, "th:media:heavy:{%lld}", (long long)req->user_id);
}

static void bucket_key(const struct http_req *req, char *key, size_t size)
{
	snprintf(key, size, "th:media:heavymp:{%lld}", (long long)req->user_id);
}

/* 1 when a hold named member ("host:pid:seq") belongs to a worker of this
 * host that is gone, or to this worker (one request at a time: an older
 * hold of its own is a lost give-back). */
static int hold_stale(const char *member, size_t len)
{
	char buf[128], *seq, *pidp, *end;
	long pid;

	if (len >= sizeof(buf))
		return 0;
	memcpy(buf, member, len);
	buf[len] = '\0';
	seq = strrchr(buf, ':');
	if (!seq)
		return 0;
	*seq = '\0';
	pidp = strrchr(buf, ':');
	if (!pidp)
		return 0;
	*pidp++ = '\0';
	if (strcmp(buf, host) != 0)
		return 0;
	errno = 0;
	pid = strtol(pidp, &end, 10);
	if (errno || *end || pid <= 0)
		return 0;
	if (pid == (long)getpid())
		return 1;
	return !pid_alive((pid_t)pid);
}

/* The stale holds (hold_stale) in the sorted set key, at most STALE_MAX,
 * into out (strings of a reply the request's arena owns).  Their count. */
static int stale_holds(struct http_req *req, const char *key, const char **out)
{
	const char *argv[] = {"ZRANGE", key, "0", "-1"};
	struct cache_reply *r = cache_own(req, cache_cmd(4, argv, NULL));
	size_t i, n;
	int k = 0;

	if (!r || cache_reply_type(r) != CACHE_ARRAY)
		return 0;
	n = cache_reply_count(r);
	for (i = 0; i < n && k < STALE_MAX; i++) {
		size_t len;
		const char *m = cache_reply_str(cache_reply_elem(r, i), &len);

		if (hold_stale(m, len))
			out[k++] = m;
	}
	if (k)
		log_warn("images: %d hold(s) of gone workers dropped from %s", k, key);
	return k;
}

/* Runs script s with args (numkeys, keys, arguments: at most RUN_ARGS),
 * then the nstale stale holds.  The reply belongs to the request; NULL when
 * Redis failed or answered an error (logged). */
#define RUN_ARGS 8
static struct cache_reply *run(struct http_req *req, struct cache_script *s, const char **args,
			       int nargs, const char **stale, int nstale)
{
	const char *argv[2 + RUN_ARGS + STALE_MAX];
	struct cache_reply *r;
	int i, n = 2;

	for (i = 0; i < nargs && i < RUN_ARGS; i++)
		argv[n++] = args[i];
	for (i = 0; i < nstale && i < STALE_MAX; i++)
		argv[n++] = stale[i];
	r = cache_own(req, cache_script_run(s, n, argv));
	if (r && cache_reply_type(r) == CACHE_ERROR) {
		char clean[160];

		log_error("images: Redis: %s",
			  log_clean(clean, sizeof(clean), cache_reply_str(r, NULL)));
		return NULL;
	}
	if (!r)
		log_warn("images: Redis: %s", cache_last_error());
	return r;
}

/* The user's place: 1 taken, 0 refused, -1 Redis failed.  A refusal is
 * retried once without the stale holds of this host. */
static int place_take(struct http_req *req, struct budget *b)
{
	char key[64], max[24], ms[24];
	const char *args[] = {"1", key, b->job, max, ms};
	const char *stale[STALE_MAX];
	int nstale = 0;

	places_key(req, key, sizeof(key));
	snprintf(max, sizeof(max), "%lld", per_user);
	snprintf(ms, sizeof(ms), "%lld", hold_ms);
	for (int attempt = 0; attempt < 2; attempt++) {
		struct cache_reply *r = run(req, &take_s, args, 5, stale, nstale);

		if (!r || cache_reply_type(r) != CACHE_INT)
			return -1;
		if (cache_reply_int(r) == 1)
			return 1;
		nstale = attempt == 0 ? stale_holds(req, key, stale) : 0;
		if (!nstale)
			break;
	}
	return 0;
}

/* Replies 429 with msg and Retry-After: retry_after_s, counted in counter.
 * -1, for the caller to return. */
static int refuse(struct http_req *req, int counter, const char *msg, long long retry_after_s)
{
	char ra[24];

	metrics_add(counter, 1);
	http_reply_error(req, TH_ERATELIMITED, msg, NULL);
	snprintf(ra, sizeof(ra), "%lld", retry_after_s);
	http_set_header(req, "Retry-After", ra);
	return -1;
}

/* Replies 503: the holds cannot be counted while Redis is out.  -1. */
static int unavailable(struct http_req *req)
{
	http_reply_error(req, TH_EUNAVAILABLE, "cannot count images in processing now", NULL);
	return -1;
}

int budget_user_take(struct http_req *req, struct budget *b)
{
	int got;

	memset(b, 0, sizeof(*b));
	b->slot = -1;
	b->req = req;
	snprintf(b->job, sizeof(b->job), "%s:%ld:%llu", host, (long)getpid(), ++job_seq);
	got = place_take(req, b);
	if (got < 0)
		return unavailable(req);
	if (got == 0) {
		char msg[96];

		snprintf(msg, sizeof(msg), "at most %lld images of yours are processed at once",
			 per_user);
		return refuse(req, c_user_refused, msg, 2);
	}
	b->user_taken = 1;
	b->keep_at = mono_ms() + (uint64_t)hold_ms / 4;
	return 0;
}

/* The user's large-image place and mp megapixels of the user's budget.
 * 1 taken; 0 refused: *wait_ms 0 when another large image of the user
 * runs, else how long until this one would fit the budget; -1 Redis
 * failed. */
static int heavy_user_take(struct http_req *req, struct budget *b, long long mp, long long *wait_ms)
{
	char hkey[64], bkey[64], ms[24], mps[24], iv[24], burst[24];
	const char *args[] = {"2", hkey, bkey, b->job, ms, mps, iv, burst};
	const char *stale[STALE_MAX];
	int nstale = 0;

	heavy_key(req, hkey, sizeof(hkey));
	bucket_key(req, bkey, sizeof(bkey));
	snprintf(ms, sizeof(ms), "%lld", hold_ms);
	snprintf(mps, sizeof(mps), "%lld", mp);
	snprintf(iv, sizeof(iv), "%lld", 60000 / heavy_mp_per_min);
	snprintf(burst, sizeof(burst), "%lld", heavy_mp_per_min);
	*wait_ms = 0;
	for (int attempt = 0; attempt < 2; attempt++) {
		struct cache_reply *r = run(req, &heavy_take_s, args, 8, stale, nstale);

		if (!r || cache_reply_type(r) != CACHE_ARRAY || cache_reply_count(r) != 2)
			return -1;
		if (cache_reply_int(cache_reply_elem(r, 0)) == 1)
			return 1;
		*wait_ms = cache_reply_int(cache_reply_elem(r, 1));
		nstale = attempt == 0 && *wait_ms == 0 ? stale_holds(req, hkey, stale) : 0;
		if (!nstale)
			break;
	}
	return 0;
}

/* Gives back the large-image place and the megapixels taken with it. */
static void heavy_refund(struct http_req *req, struct budget *b)
{
	char hkey[64], bkey[64], mps[24], iv[24];
	const char *args[] = {"2", hkey, bkey, b->job, mps, iv};

	heavy_key(req, hkey, sizeof(hkey));
	bucket_key(req, bkey, sizeof(bkey));
	snprintf(mps, sizeof(mps), "%lld", b->heavy_mp);
	snprintf(iv, sizeof(iv), "%lld", 60000 / heavy_mp_per_min);
	if (!run(req, &heavy_refund_s, args, 6, NULL, 0))
		log_warn("images: cannot give back a large-image place of user %lld",
			 (long long)req->user_id);
	b->heavy_taken = 0;
}

static void nap_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* The user's large-image place, waiting until deadline for the user's other
 * large image.  0, or -1 when replied (429, or 503 when Redis is out). */
static int heavy_user_wait(struct http_req *req, struct budget *b, unsigned long long pixels,
			   uint64_t deadline)
{
	long long mp = (long long)((pixels + 999999) / 1000000), wait_ms;
	char msg[128];
	int got;

	while ((got = heavy_user_take(req, b, mp, &wait_ms)) == 0 && wait_ms == 0 &&
	       mono_ms() + HEAVY_POLL_MS < deadline) {
		budget_keepalive(b);
		nap_ms(HEAVY_POLL_MS);
	}
	if (got < 0)
		return unavailable(req);
	if (got == 1) {
		b->heavy_taken = 1;
		b->heavy_mp = mp;
		return 0;
	}
	if (wait_ms == 0)
		return refuse(req, c_heavy_busy,
			      "one large image of yours is processed at a time; try again when it "
			      "is done",
			      5);
	snprintf(msg, sizeof(msg), "large images of yours: at most %lld megapixels a minute",
		 heavy_mp_per_min);
	return refuse(req, c_heavy_rate, msg, (wait_ms + 999) / 1000);
}

int budget_host_take(struct http_req *req, unsigned long long pixels, struct budget *b)
{
	uint64_t deadline = mono_ms() + (uint64_t)heavy_wait_ms, now;
	int waited = 0;

	if (pixels <= (unsigned long long)heavy_pixels || !heavy)
		return 0;
	if (heavy_user_wait(req, b, pixels, deadline) < 0)
		return -1;
	now = mono_ms();
	b->slot = slots_acquire(heavy, now < deadline ? (long)(deadline - now) : 0, &waited);
	if (waited)
		metrics_add(c_host_waits, 1);
	if (b->slot < 0) {
		log_info("images: no host slot for %llu pixels within %lld ms: %s", pixels,
			 heavy_wait_ms, strerror(errno));
		heavy_refund(req, b);
		return refuse(req, c_host_refused,
			      "too many large images are being processed; try again shortly", 5);
	}
	budget_keepalive(b);
	return 0;
}

void budget_keepalive(void *budget)
{
	struct budget *b = budget;
	char pkey[64], hkey[64], ms[24];
	const char *args[] = {"2", pkey, hkey, b->job, ms, b->heavy_taken ? "1" : "0"};
	uint64_t now = mono_ms();

	if (!b->user_taken || now < b->keep_at)
		return;
	b->keep_at = now + (uint64_t)hold_ms / 4;
	places_key(b->req, pkey, sizeof(pkey));
	heavy_key(b->req, hkey, sizeof(hkey));
	snprintf(ms, sizeof(ms), "%lld", hold_ms);
	/* a lost keepalive is retried a quarter of a hold later: logged only */
	run(b->req, &keep_s, args, 6, NULL, 0);
}

void budget_release(struct http_req *req, struct budget *b)
{
	char pkey[64], hkey[64];
	const char *args[] = {"2", pkey, hkey, b->job};

	if (b->slot >= 0 && heavy)
		slots_release(heavy, b->slot);
	b->slot = -1;
	if (!b->user_taken)
		return;
	b->user_taken = 0;
	b->heavy_taken = 0;
	places_key(req, pkey, sizeof(pkey));
	heavy_key(req, hkey, sizeof(hkey));
	/* a lost give-back holds the user's place until it lapses (or the next
	 * refused take on this host sees it is this worker's): logged only */
	if (!run(req, &give_s, args, 4, NULL, 0))
		log_warn("images: cannot give back the places of user %lld",
			 (long long)req->user_id);
}
