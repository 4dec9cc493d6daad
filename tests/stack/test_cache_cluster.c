/* lib/cache on a real Redis Cluster started here: three masters (no
 * replicas), password-protected like the stack's Redis, on TH_PORT_BASE+50..
 * +52, made a cluster with redis-cli --cluster create.
 *   - commands route by slot (keys land on all three nodes; the slot the
 *     client computes is the server's CLUSTER KEYSLOT);
 *   - hash-tagged multi-key commands and scripts run; EVALSHA reaches a node
 *     that never saw SCRIPT LOAD;
 *   - a slot moved to another node: MOVED followed, the map re-read;
 *   - a slot half migrated: ASK followed (ASKING, then the command) for a
 *     key already moved and for a new key, the old node still serves the rest;
 *   - a node killed: its slots fail in bounded time, the others still work.
 * tests/integration/run runs this with TH_REDIS_PASSWORD_FILE set. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "cache.h"
#include "cluster.h"
#include "log.h"
#include "rsrv.h"

#define NODES 3

static int B;              /* the first node's port */
static int n_moved, n_ask; /* redirects the client logged */

static void sink(int level, const char *line)
{
	(void)level;
	if (strstr(line, "redis cluster: MOVED"))
		n_moved++;
	if (strstr(line, "redis cluster: ASK"))
		n_ask++;
	fprintf(stderr, "%s\n", line);
}

static int cluster_ok(int port)
{
	redisContext *c = rsrv_conn(port);
	redisReply *r = c ? redisCommand(c, "CLUSTER INFO") : NULL;
	int ok = r && r->str && strstr(r->str, "cluster_state:ok") != NULL;

	if (r)
		freeReplyObject(r);
	if (c)
		redisFree(c);
	return ok;
}

static int setup(void **state)
{
	char conf[256], cmd[256];
	double t0;

	(void)state;
	B = rsrv_base() + 10;
	if (rsrv_setup() < 0) {
		fprintf(stderr, "TH_REDIS_PASSWORD_FILE must name the stack's Redis password\n");
		return -1;
	}
	for (int i = 0; i < NODES; i++) {
		snprintf(conf, sizeof(conf),
			 "cluster-enabled yes\ncluster-config-file nodes-%d.conf\n"
			 "cluster-node-timeout 2000\n",
			 B + i);
		if (rsrv_start(B + i, 0, conf) < 0)
			return -1;
	}
	/* the password through the environment, never on a command line */
	setenv("REDISCLI_AUTH", rsrv_pw, 1);
	snprintf(cmd, sizeof(cmd),
		 "redis-cli --cluster create 127.0.0.1:%d 127.0.0.1:%d 127.0.0.1:%d "
		 "--cluster-yes >%s/create.log 2>&1",
		 B, B + 1, B + 2, rsrv_dir);
	unsetenv("REDISCLI_AUTH_UNUSED");
	if (system(cmd) != 0) {
		fprintf(stderr, "redis-cli --cluster create failed (%s/create.log)\n", rsrv_dir);
		return -1;
	}
	unsetenv("REDISCLI_AUTH");
	for (t0 = rsrv_now(); !(cluster_ok(B) && cluster_ok(B + 1) && cluster_ok(B + 2));
	     usleep(100000))
		if (rsrv_now() - t0 > 20) {
			fprintf(stderr, "the cluster is not ok after 20 s\n");
			return -1;
		}
	log_set_level(LOG_DEBUG);
	log_set_sink(sink);
	snprintf(cmd, sizeof(cmd), "127.0.0.1:%d", B + 1); /* one seed is enough */
	setenv("TH_REDIS_CLUSTER", cmd, 1);
	unsetenv("TH_REDIS_SENTINELS");
	return cache_init_env(250, 0);
}

static int teardown(void **state)
{
	(void)state;
	cache_close();
	unsetenv("TH_REDIS_CLUSTER");
	rsrv_teardown();
	return 0;
}

static struct cache_reply *cmd3(const char *a, const char *b, const char *c)
{
	const char *argv[] = {a, b, c};

	return cache_cmd(c ? 3 : 2, argv, NULL);
}

static void expect_str(struct cache_reply *r, const char *want)
{
	assert_non_null(r);
	assert_int_equal(cache_reply_type(r), CACHE_STR);
	assert_string_equal(cache_reply_str(r, NULL), want);
	cache_reply_free(r);
}

/* The port of the node serving slot, asked of a node. */
static int owner_port(int slot)
{
	redisContext *c = rsrv_conn(B);
	redisReply *r = c ? redisCommand(c, "CLUSTER SLOTS") : NULL;
	int port = -1;

	for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
		redisReply *e = r->element[i];

		if (slot >= e->element[0]->integer && slot <= e->element[1]->integer)
			port = (int)e->element[2]->element[1]->integer;
	}
	if (r)
		freeReplyObject(r);
	if (c)
		redisFree(c);
	return port;
}

static void node_id(int port, char *out, size_t size)
{
	assert_int_equal(rsrv_cmd(port, out, size, "CLUSTER MYID"), 0);
	assert_int_equal(strlen(out), 40);
}

/* A key "prefix<n>" whose slot is served by port; its slot in *slot. */
static void key_on(int port, const char *prefix, char *key, size_t size, int *slot)
{
	for (int n = 0; n < 100000; n++) {
		snprintf(key, size, "%s%d", prefix, n);
		*slot = (int)cluster_key_slot(key, strlen(key));
		if (owner_port(*slot) == port)
			return;
	}
	fail_msg("no key on port %d", port);
}

static void test_routing(void **state)
{
	char key[32], val[32], out[32];
	int per_node[NODES] = {0};

	(void)state;
	for (int i = 0; i < 60; i++) {
		snprintf(key, sizeof(key), "th:test:route:%d", i);
		snprintf(val, sizeof(val), "v%d", i);
		expect_str(cmd3("SET", key, val), "OK");
		expect_str(cmd3("GET", key, NULL), val);
		/* the client's slot is the server's */
		assert_int_equal(rsrv_cmd(B, out, sizeof(out), "CLUSTER KEYSLOT %s", key), 0);
		assert_int_equal(atoi(out), (int)cluster_key_slot(key, strlen(key)));
	}
	for (int i = 0; i < NODES; i++) {
		assert_int_equal(rsrv_cmd(B + i, out, sizeof(out), "DBSIZE"), 0);
		per_node[i] = atoi(out);
		assert_true(per_node[i] > 0); /* every node holds some */
	}
	assert_true(per_node[0] + per_node[1] + per_node[2] >= 60);
	assert_int_equal(cache_ping(), 0);
	assert_int_equal(strlen(cache_data_id("th:test:route:1")), 40);
}

static void test_tags_and_scripts(void **state)
{
	static struct cache_script two =
		{"redis.call('SET', KEYS[1], ARGV[1]) redis.call('SET', KEYS[2], ARGV[1]) "
		 "return redis.call('MGET', KEYS[1], KEYS[2])",
		 ""};
	const char *mget[] = {"MGET", "th:t:{c7}:a", "th:t:{c7}:b"};
	const char *cross[] = {"MGET", "foo", "bar"};
	struct cache_reply *r;

	(void)state;
	for (int i = 0; i < 12; i++) {
		char k1[32], k2[32];
		const char *argv[] = {NULL, NULL, "2", k1, k2, "x"};

		/* tags on every node: EVALSHA meets nodes that never saw the SCRIPT LOAD */
		snprintf(k1, sizeof(k1), "th:t:{c%d}:a", i);
		snprintf(k2, sizeof(k2), "th:t:{c%d}:b", i);
		r = cache_script_run(&two, 6, argv);
		assert_non_null(r);
		assert_int_equal(cache_reply_type(r), CACHE_ARRAY);
		assert_int_equal(cache_reply_count(r), 2);
		assert_string_equal(cache_reply_str(cache_reply_elem(r, 1), NULL), "x");
		cache_reply_free(r);
	}
	r = cache_cmd(3, mget, NULL);
	assert_int_equal(cache_reply_type(r), CACHE_ARRAY);
	cache_reply_free(r);
	/* keys of two slots: the server's CROSSSLOT, as an error reply */
	r = cache_cmd(3, cross, NULL);
	assert_non_null(r);
	assert_int_equal(cache_reply_type(r), CACHE_ERROR);
	assert_non_null(strstr(cache_reply_str(r, NULL), "CROSSSLOT"));
	cache_reply_free(r);
}

/* The whole slot of a key moves to another node: the client's map is stale
 * and the old node answers MOVED. */
static void test_moved(void **state)
{
	char key[32], from_id[64], to_id[64], out[64];
	int slot, from = B, to = B + 2;

	(void)state;
	key_on(from, "th:test:moved:", key, sizeof(key), &slot);
	expect_str(cmd3("SET", key, "before"), "OK"); /* the map says: from */
	node_id(from, from_id, sizeof(from_id));
	node_id(to, to_id, sizeof(to_id));
	assert_int_equal(rsrv_cmd(to, out, sizeof(out), "CLUSTER SETSLOT %d IMPORTING %s", slot,
				  from_id),
			 0);
	assert_string_equal(out, "OK");
	assert_int_equal(rsrv_cmd(from, out, sizeof(out), "CLUSTER SETSLOT %d MIGRATING %s", slot,
				  to_id),
			 0);
	assert_string_equal(out, "OK");
	assert_int_equal(rsrv_cmd(from, out, sizeof(out), "MIGRATE 127.0.0.1 %d %s 0 5000 AUTH %s",
				  to, key, rsrv_pw),
			 0);
	assert_string_equal(out, "OK");
	for (int i = 0; i < NODES; i++) {
		assert_int_equal(rsrv_cmd(B + i, out, sizeof(out), "CLUSTER SETSLOT %d NODE %s",
					  slot, to_id),
				 0);
		assert_string_equal(out, "OK");
	}
	n_moved = 0;
	expect_str(cmd3("GET", key, NULL), "before"); /* MOVED followed */
	assert_int_equal(n_moved, 1);
	expect_str(cmd3("SET", key, "after"), "OK");
	assert_int_equal(rsrv_cmd(to, out, sizeof(out), "GET %s", key), 0);
	assert_string_equal(out, "after");
}

/* A slot half migrated: one key already on the new node (ASK), one still on
 * the old (served there), a new key (ASK: created on the new node). */
static void test_ask(void **state)
{
	char base[32], moved[64], stays[64], fresh[64], from_id[64], to_id[64], out[64];
	int slot, from = B + 1, to = B;

	(void)state;
	key_on(from, "th:test:ask:", base, sizeof(base), &slot);
	/* three keys of that slot: its name as their hash tag */
	snprintf(moved, sizeof(moved), "{%s}:moved", base);
	snprintf(stays, sizeof(stays), "{%s}:stays", base);
	snprintf(fresh, sizeof(fresh), "{%s}:fresh", base);
	expect_str(cmd3("SET", moved, "m"), "OK");
	expect_str(cmd3("SET", stays, "s"), "OK");
	node_id(from, from_id, sizeof(from_id));
	node_id(to, to_id, sizeof(to_id));
	assert_int_equal(rsrv_cmd(to, out, sizeof(out), "CLUSTER SETSLOT %d IMPORTING %s", slot,
				  from_id),
			 0);
	assert_int_equal(rsrv_cmd(from, out, sizeof(out), "CLUSTER SETSLOT %d MIGRATING %s", slot,
				  to_id),
			 0);
	assert_int_equal(rsrv_cmd(from, out, sizeof(out), "MIGRATE 127.0.0.1 %d %s 0 5000 AUTH %s",
				  to, moved, rsrv_pw),
			 0);
	assert_string_equal(out, "OK");

	n_ask = n_moved = 0;
	expect_str(cmd3("GET", moved, NULL), "m"); /* ASK to the new node */
	expect_str(cmd3("GET", stays, NULL), "s"); /* still served by the old */
	expect_str(cmd3("SET", fresh, "f"), "OK"); /* ASK: made on the new node */
	assert_int_equal(n_ask, 2);
	assert_int_equal(n_moved, 0);
	assert_int_equal(rsrv_cmd(to, out, sizeof(out), "CLUSTER COUNTKEYSINSLOT %d", slot), 0);
	assert_string_equal(out, "2");
	/* the migration never finishes here: the owner is still the old node */
	assert_int_equal(owner_port(slot), from);
}

/* A loopback port that drops every SYN: a listener whose accept queue is
 * full (backlog 0, filled by our own connections).  A connect to it waits out
 * its whole timeout, like one to a host gone from the network; no namespace
 * or firewall rule needed.  Its sockets stay open until the process ends. */
static int blackhole_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(fd, 0), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	for (int i = 0; i < 2; i++) {
		int c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

		assert_true(c >= 0);
		(void)connect(c, (struct sockaddr *)&a, sizeof(a));
	}
	usleep(50 * 1000);
	return ntohs(a.sin_port);
}

/* Seeds (comma-separated) as TH_REDIS_CLUSTER, with a 250 ms timeout. */
static void cluster_seeds(const char *seeds)
{
	cache_close();
	setenv("TH_REDIS_CLUSTER", seeds, 1);
	assert_int_equal(cache_init_env(250, 0), 0);
}

/* Calls GET until one answers, each within bound_s; fails after 8 s. */
static void until_answer(double bound_s)
{
	double t0 = rsrv_now(), t;
	struct cache_reply *r = NULL;

	while (!r) {
		assert_true(rsrv_now() - t0 < 8.0);
		t = rsrv_now();
		r = cmd3("GET", "th:test:seeds", NULL);
		assert_true(rsrv_now() - t < bound_s);
		if (!r)
			usleep(50 * 1000);
	}
	cache_reply_free(r);
}

/* The slot map over several seeds that do not answer (silent, refusing) has
 * one budget of two timeouts, not one timeout per seed: no call takes much
 * longer than that, and once the silent seeds back off the live one is
 * reached. */
static void test_unreachable_seeds(void **state)
{
	char seeds[256];
	size_t n = 0;
	double t0;

	(void)state;
	for (int i = 0; i < 6; i++)
		n += (size_t)snprintf(seeds + n, sizeof(seeds) - n, "127.0.0.1:%d,",
				      blackhole_port());
	snprintf(seeds + n, sizeof(seeds) - n, "127.0.0.1:1,127.0.0.1:%d", B);
	cluster_seeds(seeds);
	t0 = rsrv_now();
	cache_reply_free(cmd3("GET", "th:test:seeds", NULL));
	/* 6 silent seeds at 250 ms each would be 1.5 s; the budget is 0.5 s,
	 * plus one command's timeout on whichever node the key is sent to */
	assert_true(rsrv_now() - t0 < 1.2);
	until_answer(1.2);
	snprintf(seeds, sizeof(seeds), "127.0.0.1:%d", B + 1);
	cluster_seeds(seeds);
}

/* A seed whose name does not resolve is a node that cannot be reached: the
 * call fails at once with the name in the error (and the log), no crash;
 * with another seed the cluster is still found. */
static void test_unresolvable_seed(void **state)
{
	char seeds[128];
	double t0;

	(void)state;
	cluster_seeds("th-unresolvable.invalid:7000");
	t0 = rsrv_now();
	assert_null(cmd3("GET", "th:test:seeds", NULL));
	assert_true(rsrv_now() - t0 < 2.0);
	assert_non_null(strstr(cache_last_error(), "th-unresolvable.invalid"));
	snprintf(seeds, sizeof(seeds), "th-unresolvable.invalid:7000,127.0.0.1:%d", B);
	cluster_seeds(seeds);
	until_answer(1.2);
	snprintf(seeds, sizeof(seeds), "127.0.0.1:%d", B + 1);
	cluster_seeds(seeds);
}

/* master_replid of the server on port into out. */
static void replid_of(int port, char *out, size_t size)
{
	char info[2048];
	const char *p;

	assert_int_equal(rsrv_cmd(port, info, sizeof(info), "INFO replication"), 0);
	p = strstr(info, "master_replid:");
	assert_non_null(p);
	p += strlen("master_replid:");
	snprintf(out, size, "%.*s", (int)strcspn(p, "\r\n"), p);
}

/* Data spread over every master (the membership mirror) must see a failover
 * of any master: cache_data_ids() lists every master's replication id and
 * changes when a replica of one of them is promoted, while cache_data_id()
 * of a key on another master (what the mirror's watch used to compare)
 * stays the same. */
static void test_data_ids_any_master(void **state)
{
	char ids0[CACHE_DATA_IDS_MAX], ids1[CACHE_DATA_IDS_MAX], conf[256], out[2048];
	char id[64], rid[64], other_key[32], other0[64];
	int r = B + 3, m = B, slot, commas = 0;
	struct cache_reply *rep;
	double t0;

	(void)state;
	/* a key on another master than the one that fails over */
	key_on(B + 2, "th:test:other:", other_key, sizeof(other_key), &slot);
	rep = cmd3("SET", other_key, "x");
	assert_non_null(rep);
	cache_reply_free(rep);
	snprintf(other0, sizeof(other0), "%s", cache_data_id(other_key));
	assert_true(other0[0] != '\0');
	/* a replica of m */
	snprintf(conf, sizeof(conf),
		 "cluster-enabled yes\ncluster-config-file nodes-%d.conf\n"
		 "cluster-node-timeout 2000\n",
		 r);
	assert_true(rsrv_start(r, 0, conf) >= 0);
	assert_int_equal(rsrv_cmd(r, out, sizeof(out), "CLUSTER MEET 127.0.0.1 %d", m), 0);
	node_id(m, id, sizeof(id));
	for (t0 = rsrv_now();; usleep(100000)) {
		/* "Unknown node" until the handshake is through */
		assert_int_equal(rsrv_cmd(r, out, sizeof(out), "CLUSTER REPLICATE %s", id), 0);
		if (strcmp(out, "OK") == 0)
			break;
		assert_true(rsrv_now() - t0 < 15);
	}
	for (t0 = rsrv_now();; usleep(100000)) {
		assert_int_equal(rsrv_cmd(r, out, sizeof(out), "INFO replication"), 0);
		if (strstr(out, "master_link_status:up"))
			break;
		assert_true(rsrv_now() - t0 < 15);
	}
	assert_int_equal(cache_data_ids(ids0, sizeof(ids0)), 0);
	for (const char *p = ids0; *p; p++)
		commas += *p == ',';
	assert_int_equal(commas, 2); /* three masters */
	/* the replica takes over (a manual failover: it gets a new replication id) */
	assert_int_equal(rsrv_cmd(r, out, sizeof(out), "CLUSTER FAILOVER"), 0);
	assert_string_equal(out, "OK");
	for (t0 = rsrv_now();; usleep(100000)) {
		assert_int_equal(rsrv_cmd(r, out, sizeof(out), "INFO replication"), 0);
		if (strstr(out, "role:master"))
			break;
		assert_true(rsrv_now() - t0 < 15);
	}
	replid_of(r, rid, sizeof(rid));
	for (t0 = rsrv_now();; usleep(100000)) {
		if (cache_data_ids(ids1, sizeof(ids1)) == 0 && strcmp(ids1, ids0) != 0)
			break;
		assert_true(rsrv_now() - t0 < 10);
	}
	assert_non_null(strstr(ids1, rid));
	/* the other master's id alone would not have told */
	rep = cmd3("GET", other_key, NULL);
	assert_non_null(rep);
	cache_reply_free(rep);
	assert_string_equal(cache_data_id(other_key), other0);
}

static void test_node_down(void **state)
{
	char dead_key[32], live_key[32];
	int slot;
	double t0;
	struct cache_reply *r;

	(void)state;
	key_on(B + 1, "th:test:down:", dead_key, sizeof(dead_key), &slot);
	key_on(B + 2, "th:test:up:", live_key, sizeof(live_key), &slot);
	expect_str(cmd3("SET", dead_key, "x"), "OK");
	rsrv_kill(B + 1, SIGKILL);
	t0 = rsrv_now();
	r = cmd3("GET", dead_key, NULL);
	assert_null(r);
	assert_true(rsrv_now() - t0 < 2.0);
	/* the other nodes still answer (the cluster itself is "fail" only after
	 * the node timeout, and with no replica the slots stay down) */
	r = cmd3("SET", live_key, "y");
	assert_non_null(r);
	cache_reply_free(r);
	t0 = rsrv_now();
	assert_null(cmd3("GET", dead_key, NULL));
	assert_true(rsrv_now() - t0 < 1.0); /* backing off: at once */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_routing),
		cmocka_unit_test(test_tags_and_scripts),
		cmocka_unit_test(test_moved),
		cmocka_unit_test(test_ask),
		cmocka_unit_test(test_unreachable_seeds),
		cmocka_unit_test(test_unresolvable_seed),
		cmocka_unit_test(test_data_ids_any_master),
		cmocka_unit_test(test_node_down),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
