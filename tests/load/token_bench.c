/* th-token_bench: in-process costs behind the auth targets of
 * docs/benchmarks.md (scripts/bench runs it against its stack).
 *
 * Usage:
 *   th-token_bench verify SECONDS
 *       With a stack's environment (TH_JWT_*, TH_VAR_DIR, TH_DB_CONNINFO,
 *       TH_REDIS_HOST/PORT): issues one access token, then calls
 *       token_verify() (cached) for SECONDS and token_verify_uncached() for
 *       SECONDS on this one thread.  Prints "cached_per_s N" and
 *       "uncached_per_s N".  Exits 1 if any call did not return TH_OK.
 *   th-token_bench storm N
 *       The broker's reconnect storm (lib/tokcache): N
 *       distinct access tokens (N clients), each CONNECT verified through
 *       the broker's verified-token cache (64k entries).  The first pass
 *       finds every token new (an ES256 verify each, as after a broker
 *       restart), the second finds them cached (the clients of a dead edge
 *       reconnecting elsewhere with the tokens they had).  Prints
 *       "storm_cold_per_s N", "storm_warm_per_s N" and "storm_warm_ms N"
 *       (the time the warm pass held the thread).
 *   th-token_bench argon2 SECONDS PROCS
 *       Hashes one password with argon2id at TH_ARGON2_OPSLIMIT/MEMLIMIT
 *       (defaults as the auth service: 2, 19922944), then PROCS processes
 *       verify it for SECONDS each.  Prints "argon2_verify_per_s N", the sum.
 *
 * Revocation checks in "verify" go to the stack's Redis (and PostgreSQL if
 * Redis is down), exactly as in a worker, so the numbers include them. */
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "arena.h"
#include "cache.h"
#include "config.h"
#include "db.h"
#include "log.h"
#include "password.h"
#include "revoke.h"
#include "tokcache.h"
#include "token.h"

/* Any positive id: the revocation store treats ids it has not seen revoked
 * as live, so no session row is needed. */
#define BENCH_SESSION_ID 4242
#define BENCH_USER_ID 4242
/* Reading the clock every call would be a visible part of a ~1 us loop;
 * every 1024 calls it is noise. */
#define CLOCK_EVERY 1024
#define MAX_PROCS 256

static void usage(void)
{
	fprintf(stderr, "usage: th-token_bench verify SECONDS\n"
			"       th-token_bench storm N\n"
			"       th-token_bench argon2 SECONDS PROCS\n");
}

static double mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The same services a worker sets up (fcgi-apps/lib/app.c init_services), so that
 * revocation checks hit Redis/PostgreSQL as they do in production. */
static int init_services(void)
{
	const char *pg = cfg_str("TH_DB_CONNINFO", NULL);

	if (!pg) {
		fprintf(stderr, "th-token_bench: TH_DB_CONNINFO is not set\n");
		return -1;
	}
	if (db_init(pg, cfg_str("TH_DB_READ_CONNINFO", NULL),
		    (long)cfg_int("TH_DB_STATEMENT_TIMEOUT_MS", 5000, 0, 600000)) < 0)
		return -1;
	if (cache_init(cfg_str("TH_REDIS_HOST", "127.0.0.1"),
		       (int)cfg_int("TH_REDIS_PORT", 6379, 1, 65535),
		       (long)cfg_int("TH_REDIS_TIMEOUT_MS", 250, 1, 60000)) < 0)
		return -1;
	if (token_init() < 0 || token_init_signer() < 0)
		return -1;
	return 0;
}

typedef enum th_err (*verify_fn)(const char *, size_t, struct token_claims *);

/* Calls fn for `seconds`; returns calls per second, or -1 when a call failed
 * (a benchmark of refusals would measure the wrong path). */
static double run_verify(verify_fn fn, const char *tok, size_t len, double seconds)
{
	struct token_claims c;
	uint64_t n = 0;
	double t0 = mono_s(), t1;
	enum th_err rc;

	for (;;) {
		for (int i = 0; i < CLOCK_EVERY; i++) {
			rc = fn(tok, len, &c);
			if (rc != TH_OK) {
				fprintf(stderr,
					"th-token_bench: verify returned %d after %" PRIu64
					" calls\n",
					(int)rc, n);
				return -1;
			}
			n++;
		}
		t1 = mono_s();
		if (t1 - t0 >= seconds)
			break;
	}
	if (c.session_id != BENCH_SESSION_ID || c.user_id != BENCH_USER_ID) {
		fprintf(stderr, "th-token_bench: verify returned the wrong claims\n");
		return -1;
	}
	return (double)n / (t1 - t0);
}

static int cmd_verify(double seconds)
{
	struct arena a;
	const char *tok;
	double cached, uncached;
	int rc = 1;

	log_init("token-bench");
	if (init_services() < 0)
		return 1;
	arena_init(&a);
	tok = token_issue(&a, BENCH_USER_ID, BENCH_SESSION_ID);
	if (!tok) {
		fprintf(stderr, "th-token_bench: cannot issue a token\n");
		goto out;
	}
	if (token_ttl() < 2 * seconds + 5) {
		fprintf(stderr, "th-token_bench: TH_ACCESS_TTL %ld is too short for the run\n",
			token_ttl());
		goto out;
	}
	cached = run_verify(token_verify, tok, strlen(tok), seconds);
	if (cached < 0)
		goto out;
	uncached = run_verify(token_verify_uncached, tok, strlen(tok), seconds);
	if (uncached < 0)
		goto out;
	printf("cached_per_s %.0f\nuncached_per_s %.0f\n", cached, uncached);
	rc = 0;
out:
	arena_free(&a);
	token_close();
	cache_close();
	db_close();
	return rc;
}

/* One pass of CONNECTs: every token once.  Calls per second, or -1. */
static double storm_pass(char **toks, long n, double *secs)
{
	struct token_claims c;
	double t0 = mono_s();

	for (long i = 0; i < n; i++) {
		if (tokcache_verify(toks[i], strlen(toks[i]), &c) != TH_OK) {
			fprintf(stderr, "th-token_bench: token %ld refused\n", i);
			return -1;
		}
	}
	*secs = mono_s() - t0;
	return (double)n / *secs;
}

static int cmd_storm(long n)
{
	struct arena a;
	char **toks = NULL;
	double cold, warm, secs;
	int rc = 1;

	log_init("token-bench");
	if (init_services() < 0)
		return 1;
	arena_init(&a);
	toks = calloc((size_t)n, sizeof(*toks));
	if (!toks || tokcache_init(65536, revoke_check) < 0)
		goto out;
	for (long i = 0; i < n; i++) {
		toks[i] = token_issue(&a, BENCH_USER_ID + i, BENCH_SESSION_ID + i);
		if (!toks[i]) {
			fprintf(stderr, "th-token_bench: cannot issue a token\n");
			goto out;
		}
	}
	cold = storm_pass(toks, n, &secs);
	if (cold < 0)
		goto out;
	warm = storm_pass(toks, n, &secs);
	if (warm < 0)
		goto out;
	printf("storm_cold_per_s %.0f\nstorm_warm_per_s %.0f\nstorm_warm_ms %.1f\n", cold, warm,
	       secs * 1000);
	rc = 0;
out:
	free(toks);
	arena_free(&a);
	tokcache_close();
	token_close();
	cache_close();
	db_close();
	return rc;
}

/* One child: verify until the deadline, report its own rate through the
 * pipe.  Each child times itself, so fork and start-up are not counted and
 * the last verify (which overruns the deadline) is counted with its time. */
static void argon2_child(const char *hash, const char *pw, double seconds, int fd)
{
	uint64_t n = 0;
	double t0 = mono_s(), t1, rate;

	do {
		if (password_verify(hash, pw) != 1)
			_exit(1);
		n++;
		t1 = mono_s();
	} while (t1 - t0 < seconds);
	rate = (double)n / (t1 - t0);
	if (write(fd, &rate, sizeof(rate)) != (ssize_t)sizeof(rate))
		_exit(1);
	_exit(0);
}

static int cmd_argon2(double seconds, int procs)
{
	/* the very code and settings the auth workers use (lib/password.c):
	 * the ratio then measures what the service adds to the hash */
	static const char pw[] = "bench-password-1";
	char hash[PASSWORD_HASH_MAX];
	int fds[2], status, failed = 0, got = 0;
	double total = 0, rate;

	if (password_init() < 0 || password_hash(pw, hash, sizeof(hash)) < 0) {
		fprintf(stderr, "th-token_bench: argon2id hash failed (memory?)\n");
		return 1;
	}
	if (pipe(fds) < 0) {
		perror("th-token_bench: pipe");
		return 1;
	}
	for (int i = 0; i < procs; i++) {
		pid_t pid = fork();

		if (pid < 0) {
			perror("th-token_bench: fork");
			failed = 1;
			break;
		}
		if (pid == 0) {
			close(fds[0]);
			argon2_child(hash, pw, seconds, fds[1]);
		}
	}
	close(fds[1]);
	while (wait(&status) > 0)
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			failed = 1;
	/* each child writes 8 bytes, well under PIPE_BUF: reads are whole */
	while (read(fds[0], &rate, sizeof(rate)) == (ssize_t)sizeof(rate)) {
		total += rate;
		got++;
	}
	close(fds[0]);
	if (failed || got != procs) {
		fprintf(stderr, "th-token_bench: an argon2 worker failed\n");
		return 1;
	}
	printf("argon2_verify_per_s %.1f\n", total);
	fprintf(stderr,
		"th-token_bench: argon2id verify (lib/password), %d procs x %.0f s, "
		"cost %.31s\n",
		procs, seconds, hash);
	return 0;
}

static int parse_arg(const char *s, long long min, long long max, long long *out)
{
	if (cfg_parse_int(s, min, max, out) < 0) {
		fprintf(stderr, "th-token_bench: bad number '%s' (%lld..%lld)\n", s, min, max);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	long long secs, procs;

	if (argc == 3 && strcmp(argv[1], "verify") == 0) {
		if (parse_arg(argv[2], 1, 3600, &secs) < 0)
			return 2;
		return cmd_verify((double)secs);
	}
	if (argc == 3 && strcmp(argv[1], "storm") == 0) {
		if (parse_arg(argv[2], 1, 65536, &procs) < 0)
			return 2;
		return cmd_storm((long)procs);
	}
	if (argc == 4 && strcmp(argv[1], "argon2") == 0) {
		if (parse_arg(argv[2], 1, 3600, &secs) < 0 ||
		    parse_arg(argv[3], 1, MAX_PROCS, &procs) < 0)
			return 2;
		return cmd_argon2((double)secs, (int)procs);
	}
	usage();
	return 2;
}
