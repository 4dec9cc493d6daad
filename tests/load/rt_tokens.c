/* th-rt_tokens: access tokens for seeded users, in bulk, without a login
 * each (the realtime-100k part of scripts/bench mints 100,000 this way).
 *
 * Reads lines "uid session_id channel_id" on stdin and writes the
 * credentials lines "uid channel_id token" of tests/load/loadlib.h on
 * stdout, the token signed by lib/token exactly as the auth service signs
 * one (same key, kid, issuer and lifetime).  The sessions must exist and be
 * live: the broker checks revocation like for any token.
 *
 * Environment: the auth service's TH_JWT_* and TH_ACCESS_TTL (scripts/bench
 * runs it in a live auth worker's environment).  At most RT_TOKENS_MAX lines;
 * a malformed line stops the run (exit 1), as does a signing failure. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "log.h"
#include "token.h"

#define RT_TOKENS_MAX 1000000
/* the arena is reset every this many tokens, so memory stays flat */
#define RT_TOKENS_BATCH 1024

int main(void)
{
	struct arena a;
	char line[256];
	long long uid, sid, chid, n = 0;
	int rc = 1;

	log_init("rt-tokens");
	if (token_init() < 0 || token_init_signer() < 0)
		return 1;
	arena_init(&a);
	while (fgets(line, sizeof(line), stdin)) {
		const char *tok;
		char extra;

		if (sscanf(line, "%lld %lld %lld %c", &uid, &sid, &chid, &extra) != 3 || uid <= 0 ||
		    sid <= 0 || chid <= 0) {
			fprintf(stderr,
				"th-rt_tokens: line %lld is not \"uid session_id channel_id\"\n",
				n + 1);
			goto out;
		}
		if (++n > RT_TOKENS_MAX) {
			fprintf(stderr, "th-rt_tokens: more than %d lines\n", RT_TOKENS_MAX);
			goto out;
		}
		tok = token_issue(&a, uid, sid);
		if (!tok) {
			fprintf(stderr, "th-rt_tokens: cannot sign a token for user %lld\n", uid);
			goto out;
		}
		if (printf("%lld %lld %s\n", uid, chid, tok) < 0) {
			fprintf(stderr, "th-rt_tokens: stdout: %s\n", strerror(errno));
			goto out;
		}
		if (n % RT_TOKENS_BATCH == 0)
			arena_reset(&a);
	}
	if (fflush(stdout) != 0 || ferror(stdin)) {
		fprintf(stderr, "th-rt_tokens: i/o error\n");
		goto out;
	}
	rc = 0;
out:
	arena_free(&a);
	token_close();
	return rc;
}
