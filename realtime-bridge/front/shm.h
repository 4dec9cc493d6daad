/* shm: what the front's processes share — made by the master before it
 * forks (MAP_SHARED | MAP_ANONYMOUS), so workers and master see one copy:
 * each worker's counters (written by that worker only, summed by /metrics),
 * the edges' down-marks, and the table of concurrent connections per client
 * address (IPv4, or an IPv6 /64) that TH_WS_MAX_PER_ADDR caps across all
 * workers.
 *
 * When a worker dies the master zeroes its gauges and its column of the
 * address table (shm_worker_reset): the cap never counts a dead worker's
 * connections. */
#ifndef TH_SHM_H
#define TH_SHM_H

#include <stdatomic.h>
#include <stdint.h>

#define SHM_MAX_WORKERS 16
#define SHM_MAX_EDGES 16
#define SHM_ADDR_SLOTS 65536u /* distinct addresses at once */

/* per-worker counters; the gauges come first (reset when a worker dies) */
enum shm_stat {
	ST_CONNS = 0, /* gauge: WebSocket connections open (upgraded) */
	ST_INFLIGHT,  /* gauge: CONNECTs sent to an edge without their CONNACK yet */
	ST_WAITING,   /* gauge: CONNECTs waiting for an admission slot */
	ST_GAUGES,
	ST_ACCEPTED = ST_GAUGES, /* TCP connections accepted */
	ST_HANDSHAKES,           /* 101 answered */
	ST_BYTES_IN,             /* MQTT bytes client -> edge */
	ST_BYTES_OUT,            /* MQTT bytes edge -> client */
	ST_EDGE_CONNECT_FAILS,
	ST_EDGE_VIA_PORT, /* an edge's unix socket did not take one: its port instead */
	ST_N
};

/* why a connection ended, or was refused: each is counted */
enum shm_reason {
	R_CLIENT_GONE = 0,   /* the client closed (EOF, reset, close frame) */
	R_EDGE_GONE,         /* the edge closed */
	R_HANDSHAKE_TIMEOUT, /* no handshake + CONNECT within TH_WS_HANDSHAKE_S */
	R_IDLE,              /* no byte from the client for 1.5 x keepalive */
	R_SLOW_READER,       /* over TH_WS_OUT_MAX bytes waiting for the client */
	R_PING_FLOOD,        /* over TH_WS_PINGS_PER_S */
	R_PACKET_TOO_BIG,    /* an MQTT packet over TH_MQTT_MAX_PACKET */
	R_FRAME_TOO_BIG,     /* a frame over it (1009) */
	R_NOT_BINARY,        /* a text frame (1003) */
	R_PROTOCOL,          /* a WebSocket or MQTT protocol error */
	R_CONNECT_REFUSED,   /* CONNACK from the front: client id, will, protocol */
	R_NO_EDGE,           /* no edge reachable */
	R_BAD_REQUEST,       /* handshake 400 */
	R_NO_SUBPROTOCOL,    /* handshake 400: no "mqtt" */
	R_BAD_ORIGIN,        /* handshake 403 */
	R_NOT_FOUND,         /* handshake 404 */
	R_TOO_LARGE,         /* handshake request over 8 KiB */
	R_PER_ADDR,          /* handshake 429: TH_WS_MAX_PER_ADDR */
	R_MAX_CONNS,         /* handshake 503: TH_WS_MAX_CONNS */
	R_METRICS,           /* a /metrics request answered */
	R_ERROR,             /* a system call failed (out of memory, descriptors) */
	R_SHUTDOWN,
	R_N
};

struct shm_worker {
	_Atomic int64_t st[ST_N];
	_Atomic int64_t closes[R_N];
	_Atomic int64_t per_edge[SHM_MAX_EDGES]; /* gauge: connections to each edge */
	_Atomic int32_t pid;
};

struct shm;

/* Maps the shared block.  NULL on failure (errno set). */
struct shm *shm_create(void);

struct shm_worker *shm_worker(struct shm *s, int worker);

/* Zeroes a dead worker's gauges and its share of the address table. */
void shm_worker_reset(struct shm *s, int worker);

/* The edges' down-marks: until when (CLOCK_MONOTONIC ms) edge i is believed down. */
int64_t shm_edge_down_until(struct shm *s, int edge);
void shm_edge_mark_down(struct shm *s, int edge, int64_t until_ms);

/* One more connection from addr (16 bytes, IPv4 as ::ffff:a.b.c.d) for
 * worker: 0, or -1 when cap connections from addr are open across every
 * worker already, -2 when the table is full. */
int shm_addr_acquire(struct shm *s, int worker, const uint8_t addr[16], unsigned cap);
/* One fewer (what shm_addr_acquire counted). */
void shm_addr_release(struct shm *s, int worker, const uint8_t addr[16]);

const char *shm_reason_name(enum shm_reason r);

#endif
