/* mlog: the once-a-second read of th:mirror:log (see mlog.h). */
#include "mlog.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acl.h"
#include "cache.h"

#define MLOG_KEY "th:mirror:log"
#define MLOG_ID_MAX 48 /* "<ms>-<seq>": two uint64s and a dash */

static char last_id[MLOG_ID_MAX] = "0-0"; /* the last entry read */

/* A stream id "<ms>-<seq>" as two numbers; -1 when it is not one. */
static int id_parse(const char *s, uint64_t *ms, uint64_t *seq)
{
	char *end;

	*ms = strtoull(s, &end, 10);
	if (end == s || *end != '-')
		return -1;
	s = end + 1;
	*seq = strtoull(s, &end, 10);
	return end == s || *end ? -1 : 0;
}

/* 1 when stream id a comes after b, 0 when not, -1 when either is not one */
static int id_after(const char *a, const char *b)
{
	uint64_t ams, aseq, bms, bseq;

	if (id_parse(a, &ams, &aseq) < 0 || id_parse(b, &bms, &bseq) < 0)
		return -1;
	return ams > bms || (ams == bms && aseq > bseq);
}

/* The id of entry e of an XRANGE reply, or NULL when it is not one that
 * fits last_id. */
static const char *entry_id(const struct cache_reply *e)
{
	const struct cache_reply *id;
	size_t len;

	if (cache_reply_type(e) != CACHE_ARRAY || cache_reply_count(e) != 2)
		return NULL;
	id = cache_reply_elem(e, 0);
	if (cache_reply_type(id) != CACHE_STR || !cache_reply_str(id, &len) || len >= MLOG_ID_MAX)
		return NULL;
	return cache_reply_str(id, NULL);
}

/* An entry's fields {k, a, b} to acl_forget_change: 0, or -1 when every
 * answer must go (it asks so, or it is not an entry the apps write). */
static int apply(const struct cache_reply *e)
{
	const struct cache_reply *f = cache_reply_elem(e, 1);
	const char *k = NULL;
	int64_t a = 0, b = 0;

	if (cache_reply_type(f) != CACHE_ARRAY)
		return -1;
	for (size_t i = 0; i + 1 < cache_reply_count(f); i += 2) {
		const struct cache_reply *name = cache_reply_elem(f, i);
		const struct cache_reply *val = cache_reply_elem(f, i + 1);
		const char *n, *v;

		if (cache_reply_type(name) != CACHE_STR || cache_reply_type(val) != CACHE_STR)
			return -1;
		n = cache_reply_str(name, NULL);
		v = cache_reply_str(val, NULL);
		if (strcmp(n, "k") == 0)
			k = v;
		else if (strcmp(n, "a") == 0)
			a = strtoll(v, NULL, 10);
		else if (strcmp(n, "b") == 0)
			b = strtoll(v, NULL, 10);
	}
	return k ? acl_forget_change(k, a, b) : -1;
}

/* The id of the log's first entry (cmd XRANGE from "-") or last one
 * (XREVRANGE from "+") into out, "0-0" for an empty log: 0, or -1 when
 * Redis does not say. */
static int edge_id(const char *cmd, const char *from, const char *to, char *out)
{
	const char *const argv[] = {cmd, MLOG_KEY, from, to, "COUNT", "1"};
	struct cache_reply *r = cache_cmd(6, argv, NULL);
	const char *id;
	int rc = -1;

	if (!r || cache_reply_type(r) != CACHE_ARRAY)
		goto out;
	if (cache_reply_count(r) == 0) {
		snprintf(out, MLOG_ID_MAX, "0-0");
		rc = 0;
	} else if ((id = entry_id(cache_reply_elem(r, 0))) != NULL) {
		snprintf(out, MLOG_ID_MAX, "%s", id);
		rc = 0;
	}
out:
	cache_reply_free(r);
	return rc;
}

int mlog_reset(void)
{
	return edge_id("XREVRANGE", "+", "-", last_id);
}

/* 1 when the log still holds last_id's successor: its first entry is not
 * after last_id (what MAXLEN trimmed was read before), or nothing was read
 * yet and the log was empty then.  0 when entries after last_id may have
 * been trimmed unread, -1 when Redis does not say. */
static int log_unbroken(void)
{
	char first[MLOG_ID_MAX];

	if (edge_id("XRANGE", "-", "+", first) < 0)
		return -1;
	if (strcmp(last_id, "0-0") == 0)
		return 1; /* empty at the reset: every entry since is after it */
	return id_after(first, last_id) == 0;
}

int mlog_follow(void)
{
	char start[MLOG_ID_MAX + 1], count[16];
	const char *const argv[] = {"XRANGE", MLOG_KEY, start, "+", "COUNT", count};
	struct cache_reply *r;
	const char *id = NULL;
	size_t n;
	int rc = -1;

	snprintf(start, sizeof(start), "(%s", last_id);
	snprintf(count, sizeof(count), "%d", MLOG_READ_MAX);
	r = cache_cmd(6, argv, NULL);
	if (!r || cache_reply_type(r) != CACHE_ARRAY)
		goto out;
	n = cache_reply_count(r);
	if (n == 0) {
		rc = 0;
		goto out;
	}
	if (n >= MLOG_READ_MAX || log_unbroken() != 1)
		goto out;
	for (size_t i = 0; i < n; i++) {
		const struct cache_reply *e = cache_reply_elem(r, i);

		if (!(id = entry_id(e)) || apply(e) < 0)
			goto out;
		snprintf(last_id, sizeof(last_id), "%s", id);
	}
	rc = (int)n;
out:
	cache_reply_free(r);
	return rc;
}
