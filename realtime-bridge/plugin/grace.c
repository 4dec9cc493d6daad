/* grace: lingering closed connections, one a user at most (see grace.h). */
#include "grace.h"

#include "imap.h"

/* the table is walked at most this often: a reconnect storm holds
 * thousands, each ending at its own millisecond */
#define GRACE_SCAN_MS 100

static struct imap held; /* uid -> ms the grace ends */
static long grace;
static long long next_due; /* no entry ends before this (0: none held) */
static long long next_scan;

int grace_init(long grace_ms)
{
	grace = grace_ms > 0 ? grace_ms : 0;
	next_due = next_scan = 0;
	return imap_init(&held, 64);
}

void grace_close(void)
{
	imap_free(&held);
	grace = 0;
}

int grace_hold(int64_t uid, long long now_ms)
{
	long long at = now_ms + grace;

	if (!grace || held.len >= GRACE_MAX || imap_get(&held, uid) || imap_put(&held, uid, at) < 0)
		return 0;
	if (!next_due || at < next_due)
		next_due = at;
	return 1;
}

int grace_lingers(int64_t uid)
{
	return grace && imap_get(&held, uid) != NULL;
}

int grace_cancel(int64_t uid)
{
	return grace && imap_del(&held, uid) == 1;
}

size_t grace_due(long long now_ms, int64_t *out, size_t max)
{
	long long later = 0;
	size_t n = 0;

	if (!held.len || now_ms < next_due || now_ms < next_scan)
		return 0;
	next_scan = now_ms + GRACE_SCAN_MS;
	/* collected first, deleted after: a delete moves other entries of an
	 * open-addressed table under a scan */
	for (size_t i = 0; i < held.cap; i++) {
		const struct imap_slot *s = &held.slots[i];

		if (!s->key)
			continue;
		if (s->val <= now_ms && n < max)
			out[n++] = s->key;
		else if (!later || s->val < later)
			later = s->val;
	}
	for (size_t i = 0; i < n; i++)
		imap_del(&held, out[i]);
	next_due = later;
	return n;
}

size_t grace_held(void)
{
	return held.len;
}
