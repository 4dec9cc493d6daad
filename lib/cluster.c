/* cluster: a slot map, a table of nodes, and the MOVED/ASK loop. */
#include "cluster.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cache.h"
#include "cachenode.h"
#include "log.h"
#include "mono.h"

#define CLUSTER_SEEDS_MAX 16
/* A stale map is read again at most this often: while a node is down every
 * command for its slots marks the map stale, and the others must not pay a
 * CLUSTER SLOTS round trip each */
#define CLUSTER_REFRESH_MIN_MS 100
/* what one slot-map refresh may take in all, in connect/command timeouts */
#define CLUSTER_REFRESH_BUDGET 2

static struct cache_node nodes[CLUSTER_NODES_MAX];
static int nnodes;
/* node index + 1 of each slot; 0: not known */
static unsigned char slot_node[CLUSTER_SLOTS];
static int map_stale = 1;
static int next_any; /* where keyless commands start looking */
static long long refreshed_ms = -CLUSTER_REFRESH_MIN_MS;
static int refresh_failing;

unsigned cluster_crc16(const char *buf, size_t len)
{
	unsigned crc = 0;

	for (size_t i = 0; i < len; i++) {
		crc ^= (unsigned)(unsigned char)buf[i] << 8;
		for (int b = 0; b < 8; b++)
			crc = (crc & 0x8000) ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
	}
	return crc;
}

unsigned cluster_key_slot(const char *key, size_t len)
{
	size_t open, close;

	/* the first '{', then the first '}' after it, with something between */
	for (open = 0; open < len && key[open] != '{'; open++)
		;
	if (open < len) {
		for (close = open + 1; close < len && key[close] != '}'; close++)
			;
		if (close < len && close > open + 1)
			return cluster_crc16(key + open + 1, close - open - 1) &
			       (CLUSTER_SLOTS - 1);
	}
	return cluster_crc16(key, len) & (CLUSTER_SLOTS - 1);
}

static int is(const char *cmd, size_t len, const char *name)
{
	return strlen(name) == len && strncasecmp(cmd, name, len) == 0;
}

int cluster_cmd_slot(int argc, const char *const *argv, const size_t *lens)
{
	static const char *const keyless[] = {
		"PING", "SCRIPT", "INFO",   "CLUSTER", "ROLE", "TIME",     "ASKING",
		"AUTH", "DBSIZE", "CONFIG", "CLIENT",  "WAIT", "FUNCTION", "ECHO",
	};
	static const char *const scripts[] = {"EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL"};

	for (size_t i = 0; i < sizeof(keyless) / sizeof(keyless[0]); i++)
		if (is(argv[0], lens[0], keyless[i]))
			return -1;
	for (size_t i = 0; i < sizeof(scripts) / sizeof(scripts[0]); i++)
		if (is(argv[0], lens[0], scripts[i])) {
			if (argc < 4 || lens[2] == 0 || argv[2][0] == '0')
				return -1;
			return (int)cluster_key_slot(argv[3], lens[3]);
		}
	return argc >= 2 ? (int)cluster_key_slot(argv[1], lens[1]) : -1;
}

/* The node at host:port, added when new; -1 when the table is full. */
static int node_at(const char *host, int port)
{
	for (int i = 0; i < nnodes; i++)
		if (nodes[i].port == port && strcmp(nodes[i].host, host) == 0)
			return i;
	if (nnodes == CLUSTER_NODES_MAX) {
		log_warn("redis cluster: more than %d nodes; %s:%d not used", CLUSTER_NODES_MAX,
			 host, port);
		return -1;
	}
	memset(&nodes[nnodes], 0, sizeof(nodes[nnodes]));
	snprintf(nodes[nnodes].host, sizeof(nodes[nnodes].host), "%s", host);
	nodes[nnodes].port = port;
	return nnodes++;
}

int cluster_init(const char *seeds)
{
	const char *p = seeds, *end;
	char host[CACHE_HOST_MAX];
	int port;

	cluster_close();
	while (*p) {
		end = strchr(p, ',');
		if (!end)
			end = p + strlen(p);
		if (nnodes == CLUSTER_SEEDS_MAX ||
		    cache_parse_addr(p, (size_t)(end - p), host, sizeof(host), &port) < 0) {
			fprintf(stderr,
				"TH_REDIS_CLUSTER: \"%.*s\" is not host:port (at most %d)\n",
				(int)(end - p) > 80 ? 80 : (int)(end - p), p, CLUSTER_SEEDS_MAX);
			return -1;
		}
		node_at(host, port);
		p = *end ? end + 1 : end;
	}
	if (!nnodes) {
		fprintf(stderr, "TH_REDIS_CLUSTER: no node\n");
		return -1;
	}
	return 0;
}

void cluster_close(void)
{
	for (int i = 0; i < nnodes; i++)
		if (nodes[i].ctx)
			redisFree(nodes[i].ctx);
	memset(nodes, 0, sizeof(nodes));
	memset(slot_node, 0, sizeof(slot_node));
	nnodes = 0;
	map_stale = 1;
	next_any = 0;
	refreshed_ms = -CLUSTER_REFRESH_MIN_MS;
	refresh_failing = 0;
}

/* A node not backing off, connected ones first, for keyless commands and
 * the slot map; -1 when every node is backing off. */
static int any_node(void)
{
	long long now = (long long)mono_ms();

	for (int i = 0; i < nnodes; i++) {
		int k = (next_any + i) % nnodes;

		if (nodes[k].ctx)
			return k;
	}
	for (int i = 0; i < nnodes; i++) {
		int k = (next_any + i) % nnodes;

		if (nodes[k].retry_at_ms <= now)
			return k;
	}
	return -1;
}

/* Fills the map from one CLUSTER SLOTS reply of node `from`. */
static void map_from(const redisReply *r, int from)
{
	memset(slot_node, 0, sizeof(slot_node));
	for (size_t i = 0; i < r->elements; i++) {
		const redisReply *e = r->element[i], *m;
		const char *host;
		long long lo, hi;
		int idx;

		if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
		    e->element[0]->type != REDIS_REPLY_INTEGER ||
		    e->element[1]->type != REDIS_REPLY_INTEGER)
			continue;
		m = e->element[2];
		lo = e->element[0]->integer;
		hi = e->element[1]->integer;
		if (m->type != REDIS_REPLY_ARRAY || m->elements < 2 ||
		    m->element[0]->type != REDIS_REPLY_STRING ||
		    m->element[1]->type != REDIS_REPLY_INTEGER || lo < 0 || hi >= CLUSTER_SLOTS ||
		    lo > hi)
			continue;
		/* an empty or "?" host: the node does not know its address;
		 * it is the one we asked */
		host = m->element[0]->str;
		if (!host[0] || strcmp(host, "?") == 0)
			host = nodes[from].host;
		idx = node_at(host, (int)m->element[1]->integer);
		if (idx < 0)
			continue;
		memset(slot_node + lo, idx + 1, (size_t)(hi - lo + 1));
	}
}

/* CLUSTER SLOTS from the first node that answers, all tries together within
 * CLUSTER_REFRESH_BUDGET timeouts: with several seeds unreachable (silent,
 * not refusing) it would otherwise cost one timeout each.  A node that did
 * not answer backs off, so the next refresh starts with the others. */
static int map_refresh(void)
{
	static const char *const argv[] = {"CLUSTER", "SLOTS"};
	static const size_t lens[] = {7, 5};
	const struct timeval *tv = cache_timeout();
	int tried = nnodes, rc = -1;
	long long now = (long long)mono_ms(), end;

	if (now - refreshed_ms < CLUSTER_REFRESH_MIN_MS)
		return -1;
	refreshed_ms = now;
	end = now + CLUSTER_REFRESH_BUDGET * ((long long)tv->tv_sec * 1000 + tv->tv_usec / 1000);
	cache_node_budget(end);
	for (int i = 0; i < tried; i++) {
		int k = any_node();
		redisReply *r;

		if (k < 0 || (long long)mono_ms() >= end)
			break;
		next_any = (k + 1) % nnodes;
		r = cache_node_cmd(&nodes[k], 2, (const char **)argv, lens);
		if (r && r->type == REDIS_REPLY_ARRAY && r->elements > 0) {
			map_from(r, k);
			freeReplyObject(r);
			map_stale = 0;
			rc = 0;
			break;
		}
		if (r)
			freeReplyObject(r);
	}
	cache_node_budget(0);
	/* said once when it starts failing, not at every try */
	if (rc < 0 && !refresh_failing)
		log_warn("redis cluster: no node answered CLUSTER SLOTS within %d timeouts",
			 CLUSTER_REFRESH_BUDGET);
	refresh_failing = rc < 0;
	return rc;
}

/* "MOVED <slot> <host>:<port>" / "ASK ...": *slot and the node's index;
 * -1 when malformed or the node table is full. */
static int redirect_target(const char *msg, int from, int *slot)
{
	const char *sp = strchr(msg, ' '), *addr;
	char host[CACHE_HOST_MAX];
	int port;

	if (!sp)
		return -1;
	*slot = atoi(sp + 1);
	addr = strchr(sp + 1, ' ');
	if (*slot < 0 || *slot >= CLUSTER_SLOTS || !addr)
		return -1;
	addr++;
	if (addr[0] == ':') {
		/* no host: the node's own endpoint is unknown to it; it is the one we asked */
		port = atoi(addr + 1);
		if (port < 1 || port > 65535)
			return -1;
		return node_at(nodes[from].host, port);
	}
	if (cache_parse_addr(addr, strlen(addr), host, sizeof(host), &port) < 0)
		return -1;
	return node_at(host, port);
}

struct cache_reply *cluster_cmd(int argc, const char **argv, const size_t *lens)
{
	static const char *const asking[] = {"ASKING"};
	static const size_t asking_len[] = {6};
	int slot = cluster_cmd_slot(argc, argv, lens), target, ask = 0;

	if (map_stale)
		map_refresh(); /* failing: the seeds still route by MOVED */
	target = slot >= 0 && slot_node[slot] ? slot_node[slot] - 1 : any_node();
	for (int hop = 0; hop <= CLUSTER_REDIRECTS_MAX; hop++) {
		struct cache_node *n;
		redisReply *r;
		int moved, s, to;

		if (target < 0) {
			char why[120];

			/* the last node's own failure says why (refused, timed out,
			 * a name that does not resolve) */
			snprintf(why, sizeof(why), "%s", cache_last_error());
			cache_set_error("redis cluster: no node available for slot %d (%s)", slot,
					why);
			return NULL;
		}
		n = &nodes[target];
		if (ask) {
			r = cache_node_cmd(n, 1, (const char **)asking, asking_len);
			if (!r || r->type == REDIS_REPLY_ERROR) {
				map_stale = 1;
				return (struct cache_reply *)r;
			}
			freeReplyObject(r);
		}
		r = cache_node_cmd(n, argc, argv, lens);
		if (!r) {
			/* a node down: the cluster may have moved its slots */
			map_stale = 1;
			return NULL;
		}
		if (r->type != REDIS_REPLY_ERROR)
			return (struct cache_reply *)r;
		moved = strncmp(r->str, "MOVED ", 6) == 0;
		if (!moved && strncmp(r->str, "ASK ", 4) != 0)
			return (struct cache_reply *)r; /* the command's own error */
		to = redirect_target(r->str, target, &s);
		if (to < 0) {
			log_warn("redis cluster: cannot follow \"%.80s\"", r->str);
			return (struct cache_reply *)r;
		}
		log_debug("redis cluster: %s slot %d: %s:%d -> %s:%d", moved ? "MOVED" : "ASK", s,
			  n->host, n->port, nodes[to].host, nodes[to].port);
		freeReplyObject(r);
		ask = !moved;
		if (moved) {
			/* the slot map changed: read it again, and go where told */
			slot_node[s] = (unsigned char)(to + 1);
			if (map_refresh() == 0 && slot_node[s] != to + 1)
				slot_node[s] = (unsigned char)(to + 1);
		}
		target = to;
	}
	cache_set_error("redis cluster: more than %d redirects for slot %d", CLUSTER_REDIRECTS_MAX,
			slot);
	log_warn("redis: %s", cache_last_error());
	return NULL;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int cluster_data_ids(char *out, size_t size)
{
	static const char *const ping[] = {"PING"};
	static const size_t ping_len[] = {4};
	const char *ids[CLUSTER_NODES_MAX];
	unsigned char serves[CLUSTER_NODES_MAX] = {0};
	size_t len = 0;
	int n = 0;

	out[0] = '\0';
	/* the map as the cluster has it now (at most every 100 ms): a failover
	 * moves a master's slots to its promoted replica, which no command of
	 * ours may have met yet */
	map_refresh();
	if (map_stale)
		return -1;
	for (int s = 0; s < CLUSTER_SLOTS; s++)
		if (slot_node[s])
			serves[slot_node[s] - 1] = 1;
	for (int k = 0; k < nnodes; k++) {
		if (!serves[k])
			continue;
		if (!nodes[k].ctx) {
			/* connecting reads its replication id */
			redisReply *r = cache_node_cmd(&nodes[k], 1, (const char **)ping, ping_len);

			if (!r) {
				map_stale = 1;
				return -1;
			}
			freeReplyObject(r);
		}
		if (!nodes[k].ctx || !nodes[k].replid[0])
			return -1;
		ids[n++] = nodes[k].replid;
	}
	if (!n)
		return -1;
	qsort(ids, (size_t)n, sizeof(ids[0]), cmp_str);
	for (int i = 0; i < n; i++) {
		int w = snprintf(out + len, size - len, "%s%s", i ? "," : "", ids[i]);

		if (w < 0 || (size_t)w >= size - len) {
			out[0] = '\0';
			return -1;
		}
		len += (size_t)w;
	}
	return 0;
}

const char *cluster_data_id(const char *key)
{
	unsigned slot = cluster_key_slot(key, strlen(key));
	int k = slot_node[slot] ? slot_node[slot] - 1 : -1;

	return k >= 0 && nodes[k].ctx ? nodes[k].replid : "";
}
