/* topic: level-by-level parsing into a struct, then a table of rules. */
#include "topic.h"

#include <json-c/json.h>
#include <string.h>

#include "jhcore.h"

#define TOPIC_MAX 256
#define CHAT_PAYLOAD_MAX (16 * 1024)
#define CHAT_BODY_MAX 4000

/* A positive decimal id without sign or leading zero; -1 otherwise. */
static int64_t parse_id(const char *s, size_t n)
{
	int64_t v = 0;

	if (n == 0 || n > 19 || s[0] == '0')
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		if (v > (INT64_MAX - (s[i] - '0')) / 10)
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

enum topic_kind topic_parse(const char *s, int is_filter, struct topic *out)
{
	const char *lv[5];
	size_t len[5], n = 0, total = strlen(s);
	const char *p = s;
	int i, ids, wild_ok;

	memset(out, 0, sizeof(*out));
	if (total == 0 || total > TOPIC_MAX)
		return TOPIC_INVALID;
	for (;;) {
		const char *slash = strchr(p, '/');
		size_t l = slash ? (size_t)(slash - p) : strlen(p);

		if (n == 5)
			return TOPIC_INVALID;
		lv[n] = p;
		len[n++] = l;
		if (!slash)
			break;
		p = slash + 1;
	}
#define IS(k, str) (len[k] == sizeof(str) - 1 && memcmp(lv[k], str, sizeof(str) - 1) == 0)
	if (n == 3 && IS(0, "chat")) {
		out->kind = TOPIC_CHAT;
		ids = 2;
		wild_ok = 1;
	} else if (n == 3 && IS(0, "typing")) {
		out->kind = TOPIC_TYPING;
		ids = 2;
		wild_ok = 1;
	} else if (n == 3 && IS(0, "presence")) {
		out->kind = TOPIC_PRESENCE;
		ids = 2;
		wild_ok = 1;
	} else if (n == 3 && IS(0, "events") && IS(1, "community")) {
		out->kind = TOPIC_EVENTS;
		out->id[0] = parse_id(lv[2], len[2]);
		return out->id[0] > 0 ? out->kind : (out->kind = TOPIC_INVALID);
	} else if (n == 4 && IS(0, "signal")) {
		out->kind = TOPIC_SIGNAL;
		ids = 3;
		wild_ok = 1;
	} else if (n == 3 && IS(0, "user") && IS(2, "inbox")) {
		out->kind = TOPIC_INBOX;
		out->id[0] = parse_id(lv[1], len[1]);
		return out->id[0] > 0 ? out->kind : (out->kind = TOPIC_INVALID);
	} else {
		return TOPIC_INVALID;
	}
#undef IS
	for (i = 0; i < ids; i++) {
		size_t k = (size_t)i + 1;
		int last = i == ids - 1;

		if (last && wild_ok && is_filter && len[k] == 1 && lv[k][0] == '+') {
			out->wild = 1;
			out->id[i] = 0;
			continue;
		}
		out->id[i] = parse_id(lv[k], len[k]);
		if (out->id[i] <= 0)
			return (out->kind = TOPIC_INVALID);
	}
	return out->kind;
}

static struct acl_decision decide(enum acl_need need, int64_t x, int64_t y)
{
	struct acl_decision d = {need, x, y};

	return d;
}

struct acl_decision topic_decide(const struct topic *t, int access, int64_t uid)
{
	if (access == ACL_UNSUBSCRIBE)
		return decide(NEED_ALLOW, 0, 0);
	if (uid <= 0 || t->kind == TOPIC_INVALID)
		return decide(NEED_DENY, 0, 0);
	switch (t->kind) {
	case TOPIC_CHAT:
	case TOPIC_TYPING:
		/* publish only as oneself: the author cannot be forged */
		if (access == ACL_WRITE && (t->wild || t->id[1] != uid))
			return decide(NEED_DENY, 0, 0);
		/* writing asks more than reading: in a DM, not being blocked */
		return decide(access == ACL_WRITE ? NEED_CHANNEL_WRITER : NEED_CHANNEL_MEMBER,
			      t->id[0], 0);
	case TOPIC_PRESENCE:
		if (access == ACL_WRITE)
			return decide(NEED_DENY, 0, 0); /* the broker writes it */
		return decide(NEED_COMMUNITY_MEMBER, t->id[0], 0);
	case TOPIC_EVENTS:
		if (access == ACL_WRITE)
			return decide(NEED_DENY, 0, 0); /* server events only */
		return decide(NEED_COMMUNITY_READER, t->id[0], 0);
	case TOPIC_SIGNAL:
		if (access == ACL_WRITE) {
			if (t->wild || t->id[2] != uid || t->id[1] == uid)
				return decide(NEED_DENY, 0, 0);
			return decide(NEED_CALL_PAIR, t->id[0], t->id[1]);
		}
		/* one reads only what is addressed to oneself */
		if (t->id[1] != uid)
			return decide(NEED_DENY, 0, 0);
		return decide(NEED_CALL_MEMBER, t->id[0], 0);
	case TOPIC_INBOX:
		if (access == ACL_WRITE || t->id[0] != uid)
			return decide(NEED_DENY, 0, 0);
		return decide(NEED_ALLOW, 0, 0);
	default:
		return decide(NEED_DENY, 0, 0);
	}
}

int topic_is_uuid(const char *s)
{
	static const char shape[] = "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx";
	size_t i;

	if (strlen(s) != sizeof(shape) - 1)
		return 0;
	for (i = 0; i < sizeof(shape) - 1; i++) {
		char c = s[i];

		if (shape[i] == '-') {
			if (c != '-')
				return 0;
		} else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
			     (c >= 'A' && c <= 'F'))) {
			return 0;
		}
	}
	return 1;
}

int topic_origin_ok(const char *s)
{
	size_t n = strlen(s);

	return n > 0 && n <= TOPIC_ORIGIN_MAX &&
	       strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") == n;
}

int topic_chat_payload_ok(const void *payload, uint32_t len, const char **why)
{
	struct json_object *o, *v;
	long n;
	int ok = -1;

	*why = "payload is not a JSON object";
	if (!payload || len == 0 || len > CHAT_PAYLOAD_MAX) {
		*why = "payload empty or over 16 KiB";
		return -1;
	}
	o = jh_parse(payload, len);
	if (!o || !json_object_is_type(o, json_type_object))
		goto out;
	*why = "id must be a UUID";
	if (!json_object_object_get_ex(o, "id", &v) || !json_object_is_type(v, json_type_string) ||
	    !topic_is_uuid(json_object_get_string(v)))
		goto out;
	*why = "body must be 1 to 4000 characters";
	if (!json_object_object_get_ex(o, "body", &v) || !json_object_is_type(v, json_type_string))
		goto out;
	n = jh_utf8_len(json_object_get_string(v), (size_t)json_object_get_string_len(v));
	if (n < 1 || n > CHAT_BODY_MAX ||
	    strlen(json_object_get_string(v)) != (size_t)json_object_get_string_len(v))
		goto out;
	*why = "reply_to must be a UUID";
	if (json_object_object_get_ex(o, "reply_to", &v) && v &&
	    (!json_object_is_type(v, json_type_string) ||
	     !topic_is_uuid(json_object_get_string(v))))
		goto out;
	*why = NULL;
	ok = 0;
out:
	json_object_put(o);
	return ok;
}
