/* ryw: a per-user "wrote lately" marker that sends their reads to the
 * primary. */
#include <stdio.h>

#include "cache.h"
#include "config.h"
#include "log.h"
#include "ryw.h"

static long ryw_seconds(void)
{
	static long s;

	if (!s)
		s = (long)cfg_int("TH_RYW_SECONDS", 10, 1, 3600);
	return s;
}

static int have_replica(void)
{
	static int known = -1;

	if (known < 0) {
		const char *r = cfg_str("TH_DB_READ_CONNINFO", NULL);

		known = r && *r;
	}
	return known;
}

enum db_role ryw_read_role(int64_t uid)
{
	char key[40];
	const char *argv[] = {"EXISTS", key};
	struct cache_reply *r;
	enum db_role role;

	if (!uid || !have_replica())
		return DB_READ;
	snprintf(key, sizeof(key), "th:ryw:%lld", (long long)uid);
	r = cache_cmd(2, argv, NULL);
	/* no answer: we cannot know whether the caller just wrote */
	role = (r && cache_reply_type(r) == CACHE_INT && cache_reply_int(r) == 0) ? DB_READ
										  : DB_PRIMARY;
	cache_reply_free(r);
	return role;
}

void ryw_wrote(int64_t uid)
{
	char key[40], ttl[24];
	const char *argv[] = {"SET", key, "1", "EX", ttl};
	struct cache_reply *r;

	if (!uid || !have_replica())
		return;
	snprintf(key, sizeof(key), "th:ryw:%lld", (long long)uid);
	snprintf(ttl, sizeof(ttl), "%ld", ryw_seconds());
	r = cache_cmd(5, argv, NULL);
	if (!r || cache_reply_type(r) == CACHE_ERROR)
		log_warn("ryw: read-your-writes marker for user %lld not set", (long long)uid);
	cache_reply_free(r);
}
