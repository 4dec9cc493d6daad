/* th-presence_bench: what presence costs the broker thread per CONNECT and
 * per DISCONNECT (lib/presence.c against a stack's Redis).
 *
 * Usage: th-presence_bench N
 *   With TH_REDIS_HOST/PORT (and TH_REDIS_PASSWORD_FILE) of a stack: one
 *   broker instance connects N distinct users (each a first connection
 *   anywhere: the user-set entry and the count script, and an "online"
 *   decision), then a second connection of each (the count script only),
 *   then disconnects all (the last one of each decides "offline").  Prints
 *   "first_connect_per_s", "more_connect_per_s", "disconnect_per_s" and
 *   "announced" (online + offline decisions: 2 N when all went well).
 *   The keys live under a prefix of this run and are deleted at the end;
 *   the limit is on (20), as in the broker. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cache.h"
#include "config.h"
#include "log.h"
#include "presence.h"

#define BENCH_UID_BASE 2000000000LL
#define LIMIT 20

static long announced;

static void count(int64_t uid, int online, void *arg)
{
	(void)uid;
	(void)online;
	(void)arg;
	announced++;
}

static double mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Deletes the run's keys: the user hashes are gone already (count 0), the
 * registry and the set of the instance remain. */
static void cleanup(const char *prefix)
{
	char pattern[80];
	const char *keys[] = {"KEYS", pattern};
	struct cache_reply *r;

	snprintf(pattern, sizeof(pattern), "%s:*", prefix);
	r = cache_cmd(2, keys, NULL);
	for (size_t i = 0; r && i < cache_reply_count(r); i++) {
		const char *del[] = {"DEL", cache_reply_str(cache_reply_elem(r, i), NULL)};

		cache_reply_free(cache_cmd(2, del, NULL));
	}
	cache_reply_free(r);
}

int main(int argc, char **argv)
{
	char prefix[48];
	struct presence_cfg cfg = {.broker_id = "bench", .lease_ms = 10000, .announce = count};
	struct presence *p = NULL;
	long long n;
	double t0, first, more, gone;
	int rc = 1;

	if (argc != 2 || cfg_parse_int(argv[1], 1, 1000000, &n) < 0) {
		fprintf(stderr, "usage: th-presence_bench N (1..1000000)\n");
		return 2;
	}
	log_init("presence-bench");
	if (cache_init(cfg_str("TH_REDIS_HOST", "127.0.0.1"),
		       (int)cfg_int("TH_REDIS_PORT", 6379, 1, 65535), 250) < 0)
		return 1;
	snprintf(prefix, sizeof(prefix), "th:presence-bench%d", (int)getpid());
	cfg.key_prefix = prefix;
	p = presence_open(&cfg);
	if (!p)
		goto out;
	presence_tick(p);
	if (!presence_synced(p)) {
		fprintf(stderr, "th-presence_bench: cannot register (Redis: %s)\n",
			cache_last_error());
		goto out;
	}
	t0 = mono_s();
	for (long long i = 0; i < n; i++)
		if (presence_connect(p, BENCH_UID_BASE + i, LIMIT) != PRESENCE_OK)
			goto refused;
	first = (double)n / (mono_s() - t0);
	t0 = mono_s();
	for (long long i = 0; i < n; i++)
		if (presence_connect(p, BENCH_UID_BASE + i, LIMIT) != PRESENCE_OK)
			goto refused;
	more = (double)n / (mono_s() - t0);
	t0 = mono_s();
	for (long long i = 0; i < n; i++) {
		presence_disconnect(p, BENCH_UID_BASE + i);
		presence_disconnect(p, BENCH_UID_BASE + i);
	}
	gone = (double)(2 * n) / (mono_s() - t0);
	if (!presence_synced(p)) {
		fprintf(stderr, "th-presence_bench: Redis failed during the run\n");
		goto out;
	}
	printf("first_connect_per_s %.0f\nmore_connect_per_s %.0f\ndisconnect_per_s "
	       "%.0f\nannounced %ld\n",
	       first, more, gone, announced);
	rc = 0;
	goto out;
refused:
	fprintf(stderr, "th-presence_bench: a connection was refused (Redis: %s)\n",
		cache_last_error());
out:
	presence_close(p, 0);
	cleanup(prefix);
	cache_close();
	return rc;
}
