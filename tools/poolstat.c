/* th-poolstat: lists the live workers of a pool from its metrics file.
 *
 * Usage: th-poolstat $TH_VAR_DIR/run/<pool>.metrics
 * Prints "pid<TAB>start_unix_seconds<TAB>requests_served" per worker; exits 1
 * when the file cannot be read.  Used by scripts/fcgi-pool status. */
#include <inttypes.h>
#include <stdio.h>

#include "metrics.h"

static void print_worker(int pid, int64_t started, uint64_t requests, void *ctx)
{
	(void)ctx;
	printf("%d\t%" PRId64 "\t%" PRIu64 "\n", pid, started, requests);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: th-poolstat POOL.metrics\n");
		return 2;
	}
	if (metrics_workers(argv[1], print_worker, NULL) < 0) {
		fprintf(stderr, "th-poolstat: cannot read %s\n", argv[1]);
		return 1;
	}
	return 0;
}
