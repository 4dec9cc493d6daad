/* split: see split.h. */
#include "split.h"

void split_init(struct split *s, size_t n)
{
	s->lo = 0;
	s->hi = n;
	s->depth = 0;
}

int split_halve(struct split *s)
{
	/* depth stays below SPLIT_DEPTH_MAX: each push halves a size_t count */
	if (s->hi - s->lo <= 1 || s->depth == SPLIT_DEPTH_MAX)
		return 0;
	s->ends[s->depth++] = s->hi;
	s->hi = s->lo + (s->hi - s->lo) / 2;
	return 1;
}

int split_next(struct split *s)
{
	s->lo = s->hi;
	if (s->depth == 0)
		return 0;
	s->hi = s->ends[--s->depth];
	return 1;
}
