/* front: th-wsfront's settings (main.c reads them from the environment
 * once, before the workers fork) and the worker's state (loop.c). */
#ifndef TH_FRONT_H
#define TH_FRONT_H

#include <netinet/in.h>
#include <stdint.h>

#include "edge.h"
#include "shm.h"

#define FRONT_MAX_TRUSTED 16

struct front_cfg {
	struct in_addr bind; /* TH_WS_BIND (127.0.0.1) */
	int port;            /* TH_WS_PORT (TH_PORT_BASE + 4) */
	int fronts;          /* TH_WS_FRONTS (2) */
	struct edge edges[SHM_MAX_EDGES];
	int n_edges;         /* TH_WS_EDGES (127.0.0.1:TH_PORT_BASE+3) */
	const char *origins; /* TH_WS_ORIGINS (unset: any) */
	uint8_t trusted[FRONT_MAX_TRUSTED][16];
	int n_trusted;             /* TH_WS_TRUSTED_PROXIES (127.0.0.1,::1) */
	unsigned max_per_addr;     /* TH_WS_MAX_PER_ADDR (100) */
	unsigned max_packet;       /* TH_MQTT_MAX_PACKET (65536) */
	unsigned handshake_ms;     /* TH_WS_HANDSHAKE_S (10) */
	unsigned connect_inflight; /* TH_WS_CONNECT_INFLIGHT (64) */
	unsigned out_max;          /* TH_WS_OUT_MAX (262144) */
	unsigned pings_per_s;      /* TH_WS_PINGS_PER_S (10) */
	unsigned idle_ms;          /* TH_WS_IDLE_S (600) */
	unsigned tcp_keepalive_s;  /* TH_WS_TCP_KEEPALIVE_S (300; 0: off) */
	unsigned max_conns;        /* TH_WS_MAX_CONNS (9000) */
	unsigned edge_down_ms;     /* TH_WS_EDGE_DOWN_MS (2000) */
	unsigned edge_connect_ms;  /* TH_WS_EDGE_CONNECT_MS (2000) */
};

extern struct front_cfg cfg;

/* Runs worker id until SIGTERM; returns the exit status. */
int loop_run(int id, struct shm *shm);

#endif
