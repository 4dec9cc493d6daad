/* conn: one client connection and its edge connection — the handshake,
 * the CONNECT checks and the edge choice, then the byte pump in both
 * directions with bounded buffers.  The worker's loop (loop.c) calls these
 * on epoll events and on its periodic sweep. */
#ifndef TH_CONN_H
#define TH_CONN_H

#include <stdint.h>
#include <sys/socket.h>

#include "shm.h"
#include "tw.h"

struct conn;
struct wslay_frame_context;

/* the worker's state that connections share (loop.c owns it) */
struct worker {
	int id, epfd;
	struct shm *shm;
	struct shm_worker *st;
	struct conn *all;  /* open connections, doubly linked */
	struct conn *dead; /* closed during this batch of events: freed after it */
	struct conn *waitq[SHM_MAX_EDGES], *waitq_tail[SHM_MAX_EDGES];
	unsigned inflight[SHM_MAX_EDGES];
	unsigned nconns, nupgraded;
	struct wslay_frame_context *wslay;
	struct conn *wslay_cur; /* the connection wslay's send callback appends to */
	struct tw tw;           /* every open connection, by when it times out */
};

extern struct worker wk;

/* Takes an accepted client socket (non-blocking).  Closes it on failure. */
void conn_accept(int fd, const struct sockaddr_storage *peer, int64_t now);

/* epoll events on the client's or the edge's socket. */
void conn_client_event(struct conn *c, uint32_t events, int64_t now);
void conn_edge_event(struct conn *c, uint32_t events, int64_t now);

/* Timeouts of the connections whose time has come (handshake, idle, edge
 * connect, closing): loop.c calls it every tick of wk.tw. */
void conn_sweep(int64_t now);

/* Closes every connection (worker stopping). */
void conn_close_all(int64_t now);

/* Frees the connections closed since the last call. */
void conn_reap(void);

/* 1 when c is closed (an event for it later in the same batch is ignored). */
int conn_is_dead(const struct conn *c);

/* Sets up wk.wslay.  0 or -1. */
int conn_init_worker(void);

#endif
