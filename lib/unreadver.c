/* unreadver: version keys of the unread and notification caches (see
 * unreadver.h). */
#include "unreadver.h"

#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "cache.h"
#include "db.h"
#include "jhcore.h"
#include "log.h"
#include "vcache.h"

/* KEYS: version keys; ARGV[1]: a fresh version for the missing ones. */
static const char bump_lua[] = "for _, k in ipairs(KEYS) do "
			       "  if redis.call('EXISTS', k) == 1 then redis.call('INCR', k) "
			       "  else redis.call('SET', k, ARGV[1]) end "
			       "end "
			       "return #KEYS";

/* KEYS: version keys; ARGV[1] as above.  Their values, a missing one set. */
static const char read_lua[] = "local out = {} "
			       "for i, k in ipairs(KEYS) do "
			       "  local v = redis.call('GET', k) "
			       "  if not v then redis.call('SET', k, ARGV[1]); v = ARGV[1] end "
			       "  out[i] = v "
			       "end "
			       "return out";

static struct cache_script bump_script = {bump_lua, ""};
static struct cache_script read_script = {read_lua, ""};

void unreadver_key(char out[UNREADVER_KEY_MAX], char kind, int64_t id)
{
	snprintf(out, UNREADVER_KEY_MAX, "th:uv:{v}:%c%lld", kind, (long long)id);
}

static void add(struct unreadver_batch *b, char kind, int64_t id)
{
	char k[UNREADVER_KEY_MAX];

	if (id <= 0)
		return;
	unreadver_key(k, kind, id);
	if (b->n > 0 && strcmp(b->key[b->n - 1], k) == 0)
		return;
	if (b->n == UNREADVER_BATCH_MAX)
		unreadver_flush(b);
	memcpy(b->key[b->n++], k, sizeof(k));
}

void unreadver_add_user(struct unreadver_batch *b, int64_t uid)
{
	add(b, 'u', uid);
}

static int64_t field(struct json_object *o, const char *k)
{
	struct json_object *v;

	return json_object_object_get_ex(o, k, &v) && json_object_is_type(v, json_type_int)
		       ? json_object_get_int64(v)
		       : 0;
}

/* Events no cached answer depends on: a post or comment (their
 * notifications are events of their own), a call, a REST chat message (its
 * `channel_activity` or DM `unread` events come with it), an edit. */
static int irrelevant(const char *type)
{
	static const char *const prefixes[] = {"post_", "comment_", "call_"};

	for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
		if (strncmp(type, prefixes[i], strlen(prefixes[i])) == 0)
			return 1;
	return strcmp(type, "chat_message") == 0 || strcmp(type, "message_edited") == 0;
}

void unreadver_add_event(struct unreadver_batch *b, const char *payload)
{
	struct json_object *o = jh_parse(payload, strlen(payload)), *v;

	if (!o || !json_object_object_get_ex(o, "type", &v) ||
	    !json_object_is_type(v, json_type_string) || irrelevant(json_object_get_string(v)))
		goto out;
	add(b, 'c', field(o, "community_id"));
	add(b, 'u', field(o, "user_id"));
	if (json_object_object_get_ex(o, "inbox", &v) && json_object_is_type(v, json_type_array))
		for (size_t i = 0; i < json_object_array_length(v); i++) {
			struct json_object *e = json_object_array_get_idx(v, i);

			if (json_object_is_type(e, json_type_int))
				add(b, 'u', json_object_get_int64(e));
		}
out:
	json_object_put(o);
}

void unreadver_bump_list(const char *list)
{
	static struct unreadver_batch b;
	const char *p = list;

	while (p && *p) {
		char kind = *p++;
		int64_t id = 0;

		while (*p >= '0' && *p <= '9' && id < INT64_MAX / 10)
			id = id * 10 + (*p++ - '0');
		if (kind == 'u' || kind == 'c')
			add(&b, kind, id);
		p = strchr(p, ',');
		if (p)
			p++;
	}
	unreadver_flush(&b);
}

int unreadver_commit(void)
{
	struct db_res *uv = db_exec(DB_PRIMARY, "SELECT current_setting('townhall.uv', true)", 0,
				    NULL);

	if (!uv) {
		db_rollback();
		return -1;
	}
	if (db_commit() < 0) {
		db_res_free(uv);
		return -1;
	}
	if (db_res_rows(uv) == 1 && !db_res_isnull(uv, 0, 0))
		unreadver_bump_list(db_res_get(uv, 0, 0));
	db_res_free(uv);
	return 0;
}

void unreadver_flush(struct unreadver_batch *b)
{
	const char *argv[3 + UNREADVER_BATCH_MAX + 1];
	char nkeys[16], fresh[24];
	struct cache_reply *r;
	int i;

	if (b->n == 0)
		return;
	snprintf(nkeys, sizeof(nkeys), "%d", b->n);
	vcache_fresh_version(fresh);
	argv[2] = nkeys;
	for (i = 0; i < b->n; i++)
		argv[3 + i] = b->key[i];
	argv[3 + b->n] = fresh;
	r = cache_script_run(&bump_script, 4 + b->n, argv);
	if (!r || cache_reply_type(r) != CACHE_INT) {
		log_warn("unreadver: bump of %d keys failed (%s): one by one", b->n,
			 r ? cache_reply_str(r, NULL) : cache_last_error());
		for (i = 0; i < b->n; i++)
			vcache_bump(b->key[i]);
	}
	cache_reply_free(r);
	b->n = 0;
}

int unreadver_read(const char *const *keys, int n, char *out, size_t size)
{
	const char *argv[3 + UNREADVER_BATCH_MAX + 1];
	char nkeys[16], fresh[24];
	struct cache_reply *r;
	size_t used = 0;
	int i, rc = -1;

	if (n < 1 || n > UNREADVER_BATCH_MAX || size == 0)
		return -1;
	vcache_retry(); /* a bump still waiting would make a stale answer look current */
	snprintf(nkeys, sizeof(nkeys), "%d", n);
	vcache_fresh_version(fresh);
	argv[2] = nkeys;
	for (i = 0; i < n; i++)
		argv[3 + i] = keys[i];
	argv[3 + n] = fresh;
	r = cache_script_run(&read_script, 4 + n, argv);
	if (!r || cache_reply_type(r) != CACHE_ARRAY || cache_reply_count(r) != (size_t)n)
		goto out;
	for (i = 0; i < n; i++) {
		size_t len;
		const char *s = cache_reply_str(cache_reply_elem(r, (size_t)i), &len);

		if (!s || used + len + 2 > size)
			goto out;
		if (i)
			out[used++] = ',';
		memcpy(out + used, s, len);
		used += len;
	}
	out[used] = '\0';
	rc = 0;
out:
	if (rc < 0)
		out[0] = '\0';
	cache_reply_free(r);
	return rc;
}
