/* lib/cache behind Redis Sentinel, against real servers started here: a
 * master, a replica and three sentinels (all password-protected like the
 * stack's Redis) on TH_PORT_BASE+40..+46.
 *   - discovery skips an unreachable sentinel and finds the master;
 *   - after SENTINEL failover, and after kill -9 of the master, cache_cmd
 *     works against the promoted replica within a bounded time, and
 *     cache_data_id() says the data is another server's;
 *   - a sentinel naming an unreachable master, or no sentinel answering,
 *     fails in bounded time (the 503 path), and then at once (backoff);
 *   - sentinels that accept and never answer, listed before a live one,
 *     cost one budget of two timeouts a lookup, not a timeout each.
 * tests/integration/run runs this with TH_REDIS_PASSWORD_FILE set. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "cache.h"
#include "rsrv.h"

#define FAILOVER_BOUND_S 30.0 /* generous: the machine is shared */

static int B; /* our first port */

static void sentinel_conf(char *buf, size_t size, const char *name, int master_port, int quorum)
{
	snprintf(buf, size,
		 "sentinel monitor %s 127.0.0.1 %d %d\n"
		 "sentinel auth-pass %s %s\n"
		 "sentinel down-after-milliseconds %s 1000\n"
		 "sentinel failover-timeout %s 10000\n"
		 "sentinel sentinel-pass %s\n",
		 name, master_port, quorum, name, rsrv_pw, name, name, rsrv_pw);
}

/* Each sentinel knows the replica and the two other sentinels. */
static int sentinels_ready(void)
{
	for (int s = 2; s <= 4; s++) {
		redisContext *c = rsrv_conn(B + s);
		redisReply *a, *b;
		int ok;

		if (!c)
			return 0;
		a = redisCommand(c, "SENTINEL replicas townhall");
		b = redisCommand(c, "SENTINEL sentinels townhall");
		ok = a && b && a->type == REDIS_REPLY_ARRAY && a->elements >= 1 &&
		     b->type == REDIS_REPLY_ARRAY && b->elements >= 2;
		if (a)
			freeReplyObject(a);
		if (b)
			freeReplyObject(b);
		redisFree(c);
		if (!ok)
			return 0;
	}
	return 1;
}

static void use_sentinels(const char *list, const char *name)
{
	cache_close();
	setenv("TH_REDIS_SENTINELS", list, 1);
	setenv("TH_REDIS_MASTER_NAME", name, 1);
	setenv("TH_REDIS_SENTINEL_PASSWORD_FILE", getenv("TH_REDIS_PASSWORD_FILE"), 1);
	assert_int_equal(cache_init_env(250, 0), 0);
}

static int setup(void **state)
{
	char conf[1024], list[128];
	double t0;

	(void)state;
	B = rsrv_base();
	if (rsrv_setup() < 0) {
		fprintf(stderr, "TH_REDIS_PASSWORD_FILE must name the stack's Redis password\n");
		return -1;
	}
	if (rsrv_start(B, 0, "") < 0)
		return -1;
	snprintf(conf, sizeof(conf), "replicaof 127.0.0.1 %d\n", B);
	if (rsrv_start(B + 1, 0, conf) < 0)
		return -1;
	for (int s = 2; s <= 4; s++) {
		sentinel_conf(conf, sizeof(conf), "townhall", B, 2);
		if (rsrv_start(B + s, 1, conf) < 0)
			return -1;
	}
	/* a sentinel whose master (B+6) never existed */
	sentinel_conf(conf, sizeof(conf), "gone", B + 6, 1);
	if (rsrv_start(B + 5, 1, conf) < 0)
		return -1;
	for (t0 = rsrv_now(); !sentinels_ready(); usleep(100000))
		if (rsrv_now() - t0 > 20) {
			fprintf(stderr, "sentinels did not find each other in 20 s\n");
			return -1;
		}
	/* the first sentinel listed is not there: it is skipped */
	snprintf(list, sizeof(list), "127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d,[127.0.0.1]:%d", B + 7,
		 B + 2, B + 3, B + 4);
	use_sentinels(list, "townhall");
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	cache_close();
	rsrv_teardown();
	return 0;
}

static int set_get(const char *value)
{
	const char *set[] = {"SET", "th:test:sentinel", value};
	const char *get[] = {"GET", "th:test:sentinel"};
	struct cache_reply *r = cache_cmd(3, set, NULL);
	int ok = r && cache_reply_type(r) == CACHE_STR;

	cache_reply_free(r);
	if (!ok)
		return -1;
	r = cache_cmd(2, get, NULL);
	ok = r && strcmp(cache_reply_str(r, NULL), value) == 0;
	cache_reply_free(r);
	return ok ? 0 : -1;
}

static int master_port(void)
{
	redisContext *c = rsrv_conn(B + 2);
	redisReply *r;
	int port = -1;

	if (!c)
		return -1;
	r = redisCommand(c, "SENTINEL get-master-addr-by-name townhall");
	if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2)
		port = atoi(r->element[1]->str);
	if (r)
		freeReplyObject(r);
	redisFree(c);
	return port;
}

/* Writes until one lands on another server than old_id; the seconds it took. */
static double until_new_master(const char *old_id, const char *value)
{
	double t0 = rsrv_now();

	while (rsrv_now() - t0 < FAILOVER_BOUND_S) {
		if (set_get(value) == 0 && strlen(cache_data_id("th:test:sentinel")) == 40 &&
		    strcmp(cache_data_id("th:test:sentinel"), old_id) != 0)
			return rsrv_now() - t0;
		usleep(50000);
	}
	fail_msg("no write reached a new master within %.0f s (last error: %s)", FAILOVER_BOUND_S,
		 cache_last_error());
	return -1;
}

static void test_discovery(void **state)
{
	(void)state;
	assert_int_equal(set_get("1"), 0);
	assert_int_equal(strlen(cache_data_id("th:test:sentinel")), 40);
	assert_int_equal(master_port(), B);
}

static void test_sentinel_failover(void **state)
{
	char id[41], out[64];
	double took;

	(void)state;
	assert_int_equal(set_get("2"), 0);
	snprintf(id, sizeof(id), "%s", cache_data_id("th:test:sentinel"));
	assert_int_equal(rsrv_cmd(B + 3, out, sizeof(out), "SENTINEL failover townhall"), 0);
	assert_string_equal(out, "OK");
	took = until_new_master(id, "3");
	fprintf(stderr, "# SENTINEL failover: writes on the new master after %.2f s\n", took);
	assert_int_equal(master_port(), B + 1);
}

static void test_master_killed(void **state)
{
	char id[41];
	double took;
	int old = master_port();

	(void)state;
	assert_int_equal(old, B + 1);
	/* the old master must have rejoined as a replica first, or nobody can
	 * be promoted */
	for (double t0 = rsrv_now(); rsrv_now() - t0 < FAILOVER_BOUND_S; usleep(100000)) {
		redisContext *c = rsrv_conn(B);
		redisReply *r = c ? redisCommand(c, "INFO replication") : NULL;
		int up = r && r->str && strstr(r->str, "master_link_status:up");

		if (r)
			freeReplyObject(r);
		if (c)
			redisFree(c);
		if (up)
			break;
	}
	assert_int_equal(set_get("4"), 0);
	snprintf(id, sizeof(id), "%s", cache_data_id("th:test:sentinel"));
	rsrv_kill(old, SIGKILL);
	took = until_new_master(id, "5");
	fprintf(stderr, "# kill -9 of the master: writes on the new master after %.2f s\n", took);
	assert_int_equal(master_port(), B);
}

/* A sentinel naming a master nothing listens on: each call fails within
 * about the timeout (250 ms here), and calls during the backoff at once. */
static void test_unreachable_master(void **state)
{
	char list[64];
	double t0, took;

	(void)state;
	snprintf(list, sizeof(list), "127.0.0.1:%d", B + 5);
	use_sentinels(list, "gone");
	t0 = rsrv_now();
	assert_int_equal(cache_ping(), -1);
	took = rsrv_now() - t0;
	assert_true(took < 2.0);
	t0 = rsrv_now();
	assert_int_equal(cache_ping(), -1);
	assert_true(rsrv_now() - t0 < 0.1);
	assert_non_null(strstr(cache_last_error(), "backing off"));

	/* the right sentinel, an unknown name */
	snprintf(list, sizeof(list), "127.0.0.1:%d", B + 2);
	use_sentinels(list, "nosuchmaster");
	assert_int_equal(cache_ping(), -1);
	assert_non_null(strstr(cache_last_error(), "no sentinel named"));

	/* no sentinel answers: two dead ports */
	snprintf(list, sizeof(list), "127.0.0.1:%d,127.0.0.1:%d", B + 7, B + 8);
	use_sentinels(list, "townhall");
	t0 = rsrv_now();
	assert_int_equal(cache_ping(), -1);
	assert_true(rsrv_now() - t0 < 2.0);
}

/* A port on loopback that never answers: with room in its backlog the
 * kernel completes the connection and nothing is ever read or written (a
 * sentinel that accepts and hangs); with a full backlog (full=1) the SYN is
 * dropped (a connect that hangs).  The listening socket stays open until
 * the test ends. */
static int silent_port(int full)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(fd, full ? 0 : 64), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	for (int i = 0; full && i < 2; i++) {
		int c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

		assert_true(c >= 0);
		(void)connect(c, (struct sockaddr *)&a, sizeof(a));
	}
	usleep(50 * 1000);
	return ntohs(a.sin_port);
}

/* Six sentinels that never answer (four accept, two do not even accept),
 * then a live one: asked one after the other with 250 ms each, a lookup
 * would take 1.5 s before reaching the live one.  One lookup has a budget
 * of two timeouts in all, so no call takes much longer than 0.5 s plus the
 * master's own connect and command, and the next lookups start where the
 * budget stopped, so the live sentinel is reached after a few calls. */
static void test_silent_sentinels(void **state)
{
	char list[256];
	size_t n = 0;
	double t0, t, worst = 0;
	int ok = 0;

	(void)state;
	for (int i = 0; i < 6; i++)
		n += (size_t)snprintf(list + n, sizeof(list) - n, "127.0.0.1:%d,",
				      silent_port(i >= 4));
	snprintf(list + n, sizeof(list) - n, "127.0.0.1:%d", B + 2);
	use_sentinels(list, "townhall");
	for (t0 = rsrv_now(); !ok && rsrv_now() - t0 < 8.0; usleep(50 * 1000)) {
		t = rsrv_now();
		ok = cache_ping() == 0;
		t = rsrv_now() - t;
		if (t > worst)
			worst = t;
		assert_true(t < 1.2);
	}
	fprintf(stderr,
		"# six silent sentinels before a live one: slowest call %.2f s, served "
		"after %.2f s\n",
		worst, rsrv_now() - t0);
	assert_true(ok);
	assert_int_equal(set_get("6"), 0);
}

static void test_bad_settings(void **state)
{
	(void)state;
	cache_close();
	setenv("TH_REDIS_SENTINELS", "127.0.0.1", 1);
	assert_int_equal(cache_init_env(250, 0), -1);
	setenv("TH_REDIS_SENTINELS", "127.0.0.1:0", 1);
	assert_int_equal(cache_init_env(250, 0), -1);
	setenv("TH_REDIS_SENTINELS", "127.0.0.1:1,", 1);
	assert_int_equal(cache_init_env(250, 0), 0);
	cache_close();
	setenv("TH_REDIS_CLUSTER", "127.0.0.1:1", 1);
	assert_int_equal(cache_init_env(250, 0), -1); /* both set */
	unsetenv("TH_REDIS_CLUSTER");
	unsetenv("TH_REDIS_SENTINELS");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_discovery),        cmocka_unit_test(test_sentinel_failover),
		cmocka_unit_test(test_master_killed),    cmocka_unit_test(test_unreachable_master),
		cmocka_unit_test(test_silent_sentinels), cmocka_unit_test(test_bad_settings),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
