/* feedmine: the caller's my_reactions in cached feed entries (see feedmine.h). */
#include "feedmine.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "reply.h"

#define MY_EMPTY "\"my_reactions\":[]"
#define MY_EMPTY_LEN (sizeof(MY_EMPTY) - 1)

int feedmine_ids_ok(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || s[i] == ','))
			return 0;
	return 1;
}

int feedmine_shape_ok(const char *entry, size_t len)
{
	const char *nl = memchr(entry, '\n', len), *p, *end = entry + len;
	size_t ids = 0, marks = 0;

	if (!nl)
		return 0;
	if (nl > entry) {
		ids = 1;
		for (p = entry; p < nl; p++)
			ids += *p == ',';
	}
	for (p = nl + 1; (p = memmem(p, (size_t)(end - p), MY_EMPTY, MY_EMPTY_LEN)) != NULL;
	     p += MY_EMPTY_LEN)
		marks++;
	return ids == marks;
}

/* One line of a mine entry: a post id and the caller's emoji on it. */
struct mine_row {
	int64_t post_id;
	const char *arr;
	size_t len;
};

/* Parses the rows of a mine entry (after its ids line).  -1 when malformed. */
static int mine_parse(const char *s, size_t n, struct mine_row *rows, int *nrows)
{
	const char *end = s + n, *nl, *tab;

	*nrows = 0;
	while (s < end) {
		nl = memchr(s, '\n', (size_t)(end - s));
		tab = nl ? memchr(s, '\t', (size_t)(nl - s)) : NULL;
		if (!tab || tab == s || *nrows == FEEDMINE_MAX_ROWS ||
		    !feedmine_ids_ok(s, (size_t)(tab - s)) || tab + 1 == nl || tab[1] != '[')
			return -1;
		rows[*nrows].post_id = strtoll(s, NULL, 10);
		rows[*nrows].arr = tab + 1;
		rows[*nrows].len = (size_t)(nl - tab - 1);
		(*nrows)++;
		s = nl + 1;
	}
	return 0;
}

/* The caller's reactions to the posts of ids_csv, from PostgreSQL, as the
 * rows of a mine entry (into the arena).  NULL: an error was replied. */
static char *mine_query(struct http_req *req, enum db_role role, const char *ids_csv, size_t *len)
{
	char uid[24], *ids_pg, *out;
	struct db_res *r;
	size_t cap = 1, used = 0;
	int i;

	ids_pg = arena_printf(req->arena, "{%s}", ids_csv);
	if (!ids_pg) {
		http_reply_error(req, TH_EINTERNAL, "out of memory", NULL);
		return NULL;
	}
	{
		const char *params[] = {ids_text(uid, req->user_id), ids_pg};

		r = db_exec_or_reply(req, role,
				     "SELECT post_id, json_agg(emoji ORDER BY emoji)::text "
				     "FROM reactions WHERE user_id = $1 AND post_id = "
				     "ANY($2::bigint[]) "
				     "GROUP BY post_id",
				     2, params);
	}
	if (!r)
		return NULL;
	for (i = 0; i < db_res_rows(r); i++)
		cap += strlen(db_res_get(r, i, 0)) + strlen(db_res_get(r, i, 1)) + 2;
	out = arena_alloc(req->arena, cap);
	if (!out) {
		http_reply_error(req, TH_EINTERNAL, "out of memory", NULL);
		return NULL;
	}
	out[0] = '\0';
	for (i = 0; i < db_res_rows(r); i++)
		used += (size_t)snprintf(out + used, cap - used, "%s\t%s\n", db_res_get(r, i, 0),
					 db_res_get(r, i, 1));
	*len = used;
	return out;
}

/* json (one my_reactions:[] per post, in the order of ids_csv) with the
 * caller's arrays put in, into the arena.  NULL when json does not match
 * ids_csv (a malformed entry) or out of memory (*oom set). */
static char *splice(struct http_req *req, const char *ids_csv, const char *json, size_t jlen,
		    const struct mine_row *rows, int nrows, size_t *outlen, int *oom)
{
	const char *p = json, *end = json + jlen, *hit, *id = ids_csv;
	size_t extra = 0, used = 0;
	char *out, *next;
	unsigned char taken[FEEDMINE_MAX_ROWS] = {0}; /* each row fits in out once */
	int i;

	*oom = 0;
	for (i = 0; i < nrows; i++)
		extra += rows[i].len;
	out = arena_alloc(req->arena, jlen + extra + 1);
	if (!out) {
		*oom = 1;
		return NULL;
	}
	while (*id) {
		int64_t pid = strtoll(id, &next, 10);
		const char *arr = "[]";
		size_t alen = 2;

		hit = memmem(p, (size_t)(end - p), MY_EMPTY, MY_EMPTY_LEN);
		if (!hit || next == id)
			return NULL;
		for (i = 0; i < nrows; i++)
			if (rows[i].post_id == pid) {
				if (taken[i]++)
					return NULL; /* an id twice: not an entry we made */
				arr = rows[i].arr;
				alen = rows[i].len;
				break;
			}
		memcpy(out + used, p, (size_t)(hit - p) + MY_EMPTY_LEN - 2);
		used += (size_t)(hit - p) + MY_EMPTY_LEN - 2;
		memcpy(out + used, arr, alen);
		used += alen;
		p = hit + MY_EMPTY_LEN;
		id = *next == ',' ? next + 1 : next;
	}
	if (memmem(p, (size_t)(end - p), MY_EMPTY, MY_EMPTY_LEN))
		return NULL; /* more posts than ids */
	memcpy(out + used, p, (size_t)(end - p));
	used += (size_t)(end - p);
	out[used] = '\0';
	*outlen = used;
	return out;
}

int feedmine_reply(struct http_req *req, const char *mine_key, const char *ids_csv,
		   const char *json, size_t jlen, const char *mine, size_t mlen, int checked)
{
	struct mine_row rows[FEEDMINE_MAX_ROWS];
	size_t idlen = strlen(ids_csv), rlen = 0, olen;
	const char *rtext = NULL;
	char *body;
	int nrows = 0, oom;

	if (req->user_id && idlen) {
		if (mine && mlen > idlen && memcmp(mine, ids_csv, idlen) == 0 &&
		    mine[idlen] == '\n') {
			rtext = mine + idlen + 1;
			rlen = mlen - idlen - 1;
		} else {
			/* filling the cache: the primary (see posts.h) */
			rtext = mine_query(req,
					   mine_key[0] ? DB_PRIMARY : ryw_read_role(req->user_id),
					   ids_csv, &rlen);
			if (!rtext)
				return 0; /* replied */
			if (mine_key[0]) {
				char *head = arena_printf(req->arena, "%s\n", ids_csv);

				if (head)
					feedcache_store(req->arena, mine_key, head, idlen + 1,
							rtext, rlen);
			}
		}
		if (mine_parse(rtext, rlen, rows, &nrows) < 0) {
			log_warn("feedcache: malformed entry %s", mine_key);
			return -1;
		}
	}
	if (nrows == 0 && checked) {
		/* a worker's copy, checked when it was made: its bytes as they are
		 * (they live until the next fill, after this reply is sent) */
		http_reply_raw(req, 200, "application/json", json, jlen);
		return 0;
	}
	/* also with no reactions: the copy checks that the posts match the ids */
	body = splice(req, ids_csv, json, jlen, rows, nrows, &olen, &oom);
	if (!body && !oom)
		return -1;
	if (!body) {
		http_reply_error(req, TH_EINTERNAL, "out of memory", NULL);
		return 0;
	}
	http_reply_raw(req, 200, "application/json", body, olen);
	return 0;
}
