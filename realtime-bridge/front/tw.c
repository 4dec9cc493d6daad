/* tw: see tw.h. */
#include "tw.h"

#include <stddef.h>

#define DUE TW_SLOTS

static void unlink_node(struct tw *w, struct tw_node *n)
{
	if (n->where < 0)
		return;
	if (n->prev)
		n->prev->next = n->next;
	else
		w->head[n->where] = n->next;
	if (n->next)
		n->next->prev = n->prev;
	n->next = n->prev = NULL;
	n->where = -1;
}

static void link_node(struct tw *w, struct tw_node *n, int32_t where)
{
	n->prev = NULL;
	n->next = w->head[where];
	if (n->next)
		n->next->prev = n;
	w->head[where] = n;
	n->where = where;
}

void tw_init(struct tw *w, int64_t tick_ms, int64_t now)
{
	int i;

	for (i = 0; i <= TW_SLOTS; i++)
		w->head[i] = NULL;
	w->tick_ms = tick_ms;
	w->cur = now / tick_ms;
}

void tw_node_init(struct tw_node *n)
{
	n->next = n->prev = NULL;
	n->where = -1;
}

void tw_arm(struct tw *w, struct tw_node *n, int64_t due)
{
	int64_t t = due / w->tick_ms;

	unlink_node(w, n);
	if (t < w->cur)
		t = w->cur;
	link_node(w, n, (int32_t)(t & (TW_SLOTS - 1)));
}

void tw_cancel(struct tw *w, struct tw_node *n)
{
	unlink_node(w, n);
}

void tw_expire(struct tw *w, int64_t now)
{
	int64_t last = now / w->tick_ms, t;

	/* a gap of a whole turn or more: every slot once is all there is */
	if (last - w->cur >= TW_SLOTS)
		w->cur = last - TW_SLOTS + 1;
	for (t = w->cur; t <= last; t++) {
		struct tw_node **h = &w->head[t & (TW_SLOTS - 1)];

		while (*h) {
			struct tw_node *n = *h;

			unlink_node(w, n);
			link_node(w, n, DUE);
		}
	}
	if (last + 1 > w->cur)
		w->cur = last + 1;
}

struct tw_node *tw_next(struct tw *w)
{
	struct tw_node *n = w->head[DUE];

	if (n)
		unlink_node(w, n);
	return n;
}
