/* fmetrics: see fmetrics.h. */
#include "fmetrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "front.h"
#include "mono.h"

struct out {
	char *p;
	size_t len, cap;
	int failed;
};

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct out *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (o->failed)
		return;
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			o->failed = 1;
			return;
		}
		if ((size_t)n < o->cap - o->len) {
			o->len += (size_t)n;
			return;
		}
		{
			size_t cap = o->cap * 2 + (size_t)n;
			char *np = realloc(o->p, cap);

			if (!np) {
				o->failed = 1;
				return;
			}
			o->p = np;
			o->cap = cap;
		}
	}
}

static int64_t sum(struct shm *s, enum shm_stat k)
{
	int64_t t = 0;
	int i;

	for (i = 0; i < cfg.fronts; i++)
		t += atomic_load(&shm_worker(s, i)->st[k]);
	return t;
}

int fmetrics_render(struct shm *s, char **text, size_t *len)
{
	static const struct {
		enum shm_stat k;
		const char *name, *type, *help;
	} simple[] = {
		{ST_CONNS, "th_wsfront_connections", "gauge", "WebSocket connections open"},
		{ST_INFLIGHT, "th_wsfront_connects_inflight", "gauge",
		 "CONNECTs sent to an edge without their CONNACK yet"},
		{ST_WAITING, "th_wsfront_connects_waiting", "gauge",
		 "CONNECTs waiting for admission"},
		{ST_ACCEPTED, "th_wsfront_accepted_total", "counter", "TCP connections accepted"},
		{ST_HANDSHAKES, "th_wsfront_handshakes_total", "counter",
		 "WebSocket upgrades answered 101"},
		{ST_BYTES_IN, "th_wsfront_bytes_in_total", "counter", "MQTT bytes client to edge"},
		{ST_BYTES_OUT, "th_wsfront_bytes_out_total", "counter",
		 "MQTT bytes edge to client"},
		{ST_EDGE_CONNECT_FAILS, "th_wsfront_edge_connect_failures_total", "counter",
		 "edge connects refused or timed out"},
		{ST_EDGE_VIA_PORT, "th_wsfront_edge_via_port_total", "counter",
		 "connects to an edge's port because its unix socket did not take them"},
	};
	struct out o = {malloc(8192), 0, 8192, 0};
	int64_t now = (int64_t)mono_ms();
	size_t i;
	int w, e;

	if (!o.p)
		return -1;
	for (i = 0; i < sizeof(simple) / sizeof(simple[0]); i++)
		put(&o, "# HELP %s %s\n# TYPE %s %s\n%s %lld\n", simple[i].name, simple[i].help,
		    simple[i].name, simple[i].type, simple[i].name, (long long)sum(s, simple[i].k));
	put(&o, "# HELP th_wsfront_worker_connections WebSocket connections per worker\n"
		"# TYPE th_wsfront_worker_connections gauge\n");
	for (w = 0; w < cfg.fronts; w++)
		put(&o, "th_wsfront_worker_connections{worker=\"%d\"} %lld\n", w,
		    (long long)atomic_load(&shm_worker(s, w)->st[ST_CONNS]));
	put(&o, "# HELP th_wsfront_edge_connections connections to each edge\n"
		"# TYPE th_wsfront_edge_connections gauge\n");
	for (e = 0; e < cfg.n_edges; e++) {
		int64_t t = 0;

		for (w = 0; w < cfg.fronts; w++)
			t += atomic_load(&shm_worker(s, w)->per_edge[e]);
		put(&o, "th_wsfront_edge_connections{edge=\"%s\"} %lld\n", cfg.edges[e].name,
		    (long long)t);
	}
	put(&o, "# HELP th_wsfront_edge_down 1 while an edge is marked down\n"
		"# TYPE th_wsfront_edge_down gauge\n");
	for (e = 0; e < cfg.n_edges; e++)
		put(&o, "th_wsfront_edge_down{edge=\"%s\"} %d\n", cfg.edges[e].name,
		    shm_edge_down_until(s, e) > now);
	put(&o, "# HELP th_wsfront_closes_total connections closed or refused, by reason\n"
		"# TYPE th_wsfront_closes_total counter\n");
	for (i = 0; i < R_N; i++) {
		int64_t t = 0;

		for (w = 0; w < cfg.fronts; w++)
			t += atomic_load(&shm_worker(s, w)->closes[i]);
		put(&o, "th_wsfront_closes_total{reason=\"%s\"} %lld\n",
		    shm_reason_name((enum shm_reason)i), (long long)t);
	}
	if (o.failed) {
		free(o.p);
		return -1;
	}
	*text = o.p;
	*len = o.len;
	return 0;
}
