/* mwatch: a once-a-second check of the mirror's marker, and the rebuild. */
#include "mwatch.h"

#include <fcntl.h>
#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "acl.h"
#include "cache.h"
#include "mlog.h"

#define MWATCH_KEY "th:mirror:epoch"
#define MWATCH_LOG_KEY "th:mirror:log" /* the apps' changes (mlog.h) */
#define MWATCH_RETRY_S 10

static char *cmd;
static pid_t child;
static time_t last_check, last_spawn;
static int mirror_ok;
unsigned long mwatch_rebuilds;

void mwatch_init(const char *rebuild_cmd)
{
	cmd = rebuild_cmd && *rebuild_cmd ? strdup(rebuild_cmd) : NULL;
	mirror_ok = 0; /* until the first check says so */
}

void mwatch_close(void)
{
	free(cmd);
	cmd = NULL;
	/* a running rebuild finishes on its own; it is not ours to wait for */
	child = 0;
}

int mwatch_mirror_ok(void)
{
	return mirror_ok;
}

/* fork + exec: the child must not keep the broker's sockets (listeners,
 * clients) open while it runs, so every descriptor above stderr is closed. */
static void spawn(void)
{
	pid_t pid;

	pid = fork();
	if (pid < 0) {
		mosquitto_log_printf(MOSQ_LOG_WARNING, "townhall: mirror rebuild: fork failed");
		return;
	}
	if (pid == 0) {
		int nul = open("/dev/null", O_RDONLY);

		if (nul >= 0)
			dup2(nul, 0);
		syscall(SYS_close_range, 3U, ~0U, 0U);
		signal(SIGPIPE, SIG_DFL);
		execl(cmd, cmd, "--if-missing", (char *)NULL);
		_exit(127);
	}
	child = pid;
	mwatch_rebuilds++;
	mosquitto_log_printf(MOSQ_LOG_NOTICE,
			     "townhall: membership mirror missing in Redis; rebuilding (%s, pid "
			     "%d); "
			     "memberships are read from PostgreSQL meanwhile",
			     cmd, (int)pid);
}

static void reap(void)
{
	int status;

	if (child <= 0 || waitpid(child, &status, WNOHANG) != child)
		return;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		mosquitto_log_printf(MOSQ_LOG_WARNING,
				     "townhall: mirror rebuild (pid %d) failed (status %d); "
				     "retrying in %d s",
				     (int)child, status, MWATCH_RETRY_S);
	else
		last_spawn = 0; /* done: a later loss is rebuilt at once */
	child = 0;
}

/* scripts/mirror-rebuild writes "<replid>/<time>-<pid>": the server data the
 * mirror was built on.  Another replication id than the server's now means
 * a failover promoted a replica, which may lack updates the old master had:
 * the mirror is rebuilt as if the marker were missing.  A marker without an
 * id (the server does not say it) only needs to be there. */
/* In a Cluster the mirror's keys live on every master, so the marker names
 * every master's replication id (sorted, comma-joined: cache_data_ids(), as
 * the script writes it): a failover of any master, not only the marker's,
 * may have lost mirror writes. */
static int marker_current(const char *marker)
{
	static char id[CACHE_DATA_IDS_MAX];
	const char *slash = strrchr(marker, '/');
	size_t n;

	if (cache_data_ids(id, sizeof(id)) < 0 || !slash)
		return 1; /* unknown now: asked again next second */
	n = strlen(id);
	return (size_t)(slash - marker) == n && strncmp(marker, id, n) == 0;
}

static uint64_t fnv(uint64_t h, const char *s)
{
	for (const char *p = s; *p; p++)
		h = (h ^ (unsigned char)*p) * 0x100000001b3ull;
	return (h ^ '/') * 0x100000001b3ull;
}

/* FNV-1a of the marker, the data id of the server that holds the change
 * log and the times the log could not be followed: a rebuild (new marker),
 * a failover (new replication id: the log and keys may have lost writes;
 * in a Cluster the two keys may live on different nodes) or a log that
 * cannot be followed gives another tag; never 0. */
static uint64_t gen_tag_of(const char *marker, unsigned long resets)
{
	char n[24];
	uint64_t h = fnv(0xcbf29ce484222325ull, marker);

	snprintf(n, sizeof(n), "%lu", resets);
	h = fnv(h, cache_data_id(MWATCH_LOG_KEY));
	h = fnv(h, n);
	return h | 1;
}

static uint64_t cur_tag; /* the ACL cache's generation; 0: unknown */

static void generation_unknown(void)
{
	cur_tag = 0;
	acl_set_generation(0);
}

/* The ACL cache's generation, after the marker was found current: the
 * same while the change log is followed (mlog.h) and the answers it names
 * are forgotten one by one; a new one (every answer asked again), read
 * from the log's end on, when the tag moved, the log cannot be followed,
 * or the generation was unknown meanwhile (changes logged then were not
 * read: the answers from before must not come back).  0 (answers live by
 * their TTLs only) while Redis does not say. */
static void read_generation(const char *marker)
{
	static unsigned long resets;

	if (cur_tag && cur_tag == gen_tag_of(marker, resets) && mlog_follow() >= 0)
		return;
	if (mlog_reset() < 0) {
		generation_unknown(); /* reset again next tick */
		return;
	}
	cur_tag = gen_tag_of(marker, ++resets);
	acl_set_generation(cur_tag);
}

void mwatch_tick(void)
{
	static const char *const argv[] = {"GET", MWATCH_KEY};
	time_t now = time(NULL);
	struct cache_reply *r;
	int missing;

	reap();
	if (now == last_check)
		return;
	last_check = now;
	r = cache_cmd(2, argv, NULL);
	if (!r || cache_reply_type(r) == CACHE_ERROR) {
		/* Redis out: PostgreSQL answers; nothing to rebuild into yet */
		mirror_ok = 0;
		generation_unknown();
		goto out;
	}
	missing = cache_reply_type(r) == CACHE_NIL || !marker_current(cache_reply_str(r, NULL));
	if (missing)
		generation_unknown();
	else
		read_generation(cache_reply_str(r, NULL));
	if (!missing) {
		if (!mirror_ok)
			mosquitto_log_printf(MOSQ_LOG_INFO,
					     "townhall: membership mirror present in Redis");
		mirror_ok = 1;
		goto out;
	}
	mirror_ok = 0;
	if (cmd && child == 0 && now - last_spawn >= MWATCH_RETRY_S) {
		last_spawn = now;
		spawn();
	}
out:
	cache_reply_free(r);
}
