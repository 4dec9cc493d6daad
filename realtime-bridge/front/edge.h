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

#include "shm.h"

struct edge {
	struct sockaddr_in addr;
	char name[32]; /* "host:port", as configured */
	uint64_t seed; /* hash of name: an edge's weight does not depend on list order */
};

/* Parses "127.0.0.1:1883,127.0.0.1:1884" (IPv4 literals) into at most max
 * edges.  Returns the count, or -1 with a message in err. */
int edge_parse_list(const char *s, struct edge *out, int max, char *err, size_t errsize);

/* The weight of edge seed for user uid. */
uint64_t edge_weight(uint64_t seed, int64_t uid);

/* order[0..n): the edges by decreasing weight for uid. */
void edge_rank(const struct edge *e, int n, int64_t uid, int *order);

/* The first edge in order not marked down at now_ms, or -1.  from: where to
 * start in order (to try the next one after a failure). */
int edge_pick(struct shm *s, const int *order, int n, int from, int64_t now_ms, int *pos);

#endif
