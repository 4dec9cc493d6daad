/* edge: which broker a user's connections go to.  Rendezvous (highest
 * random weight) hashing of the user id over the edges: every front with the
 * same edge list picks the same edge for a user, and when an edge is down
 * its users spread over the others in their own second choices.  An edge
 * whose connect failed is marked down for a while in shared memory (shm.h),
 * seen by every worker. */
#ifndef TH_EDGE_H
#define TH_EDGE_H

#include <netinet/in.h>
#include <stdint.h>
#include <sys/un.h>

#include "shm.h"

struct edge {
	struct sockaddr_in addr;
	/* The same broker's unix socket when it runs on this host (un.sun_family
	 * AF_UNIX, else 0): a delivery through loopback TCP costs the broker's
	 * single thread the whole TCP/IP send path, through a unix socket a copy
	 * (docs/benchmarks.md, "one user's fan-out"). */
	struct sockaddr_un un;
	char name[32]; /* "host:port", as configured: its identity, also on other hosts */
	uint64_t seed; /* hash of name: an edge's weight does not depend on list order */
};

/* Parses "127.0.0.1:1883,127.0.0.1:1884" (IPv4 literals) into at most max
 * edges; an item may name the broker's unix socket after '@'
 * ("127.0.0.1:1883@/run/th/e0.sock", an absolute path), which the front then
 * dials instead of host:port.  Returns the count, or -1 with a message in err. */
int edge_parse_list(const char *s, struct edge *out, int max, char *err, size_t errsize);

/* A non-blocking connect to e: to its unix socket when it has one and tcp is
 * 0, else to its port.  Returns the descriptor (the connect done or in
 * progress: EPOLLOUT tells), -1 when the edge refused at once (down), -2 when
 * no socket could be made here, -3 when the unix socket could not be
 * connected (its accept backlog full in a burst, or refused): try the port. */
int edge_dial(const struct edge *e, int tcp);

/* The weight of edge seed for user uid. */
uint64_t edge_weight(uint64_t seed, int64_t uid);

/* order[0..n): the edges by decreasing weight for uid. */
void edge_rank(const struct edge *e, int n, int64_t uid, int *order);

/* The first edge in order not marked down at now_ms, or -1.  from: where to
 * start in order (to try the next one after a failure). */
int edge_pick(struct shm *s, const int *order, int n, int from, int64_t now_ms, int *pos);

#endif
