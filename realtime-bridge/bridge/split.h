/* split: the order in which the messages of a batch that failed are tried
 * again (main.c): the range that failed is halved, its first half goes
 * first, down to single messages; a range that committed, or a single
 * message quarantined, makes way for the next range, left to right, so the
 * broker's order is kept and every message before the range out is
 * settled (the PUBACK gate's rule).  Pure: no I/O. */
#ifndef TH_BRIDGE_SPLIT_H
#define TH_BRIDGE_SPLIT_H

#include <stddef.h>

/* halving n messages takes at most log2(n) + 1 ranges on the stack */
#define SPLIT_DEPTH_MAX 64

struct split {
	size_t lo, hi;                /* the range out: messages [lo, hi) of the batch */
	size_t ends[SPLIT_DEPTH_MAX]; /* ends of the ranges after it, the next last */
	int depth;
};

/* the whole batch of n (> 0) messages is the range out */
void split_init(struct split *s, size_t n);
/* The range out failed: 1 when it was halved (send [lo, hi) now), 0 when it
 * is a single message (lo) that cannot be split further. */
int split_halve(struct split *s);
/* The range out is settled: 1 when a next range is out ([lo, hi)), 0 when
 * the batch is done. */
int split_next(struct split *s);

#endif
