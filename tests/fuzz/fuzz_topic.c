/* fuzz_topic: MQTT topic and filter parsing, the ACL table and the chat
 * payload check of lib/topic.c (the plugin and the
 * bridge both run them on what clients publish).
 *
 * Input: a byte (bit 0: parse as a filter; the rest: the user id asking),
 * the topic, NUL, the payload.  Checks: a parsed topic printed back in its
 * canonical form is the input itself (ids without sign or leading zero, no
 * extra level); decisions never allow writing as someone else; a payload
 * that passes is a JSON object with a UUID id and a 1..4000 char body. */
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "fuzz.h"
#include "jhcore.h"
#include "topic.h"

static void canonical(const struct topic *t, char *buf, size_t size)
{
	char last[24];

	if (t->wild)
		snprintf(last, sizeof(last), "+");
	switch (t->kind) {
	case TOPIC_CHAT:
	case TOPIC_TYPING:
	case TOPIC_PRESENCE:
		if (!t->wild)
			snprintf(last, sizeof(last), "%lld", (long long)t->id[1]);
		snprintf(buf, size, "%s/%lld/%s",
			 t->kind == TOPIC_CHAT     ? "chat"
			 : t->kind == TOPIC_TYPING ? "typing"
						   : "presence",
			 (long long)t->id[0], last);
		break;
	case TOPIC_EVENTS:
		snprintf(buf, size, "events/community/%lld", (long long)t->id[0]);
		break;
	case TOPIC_SIGNAL:
		if (!t->wild)
			snprintf(last, sizeof(last), "%lld", (long long)t->id[2]);
		snprintf(buf, size, "signal/%lld/%lld/%s", (long long)t->id[0], (long long)t->id[1],
			 last);
		break;
	case TOPIC_INBOX:
		snprintf(buf, size, "user/%lld/inbox", (long long)t->id[0]);
		break;
	default:
		buf[0] = '\0';
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const int access[] = {ACL_READ, ACL_WRITE, ACL_SUBSCRIBE, ACL_UNSUBSCRIBE};
	struct fz f = {data, size};
	unsigned knob = fz_byte(&f);
	int is_filter = knob & 1;
	int64_t uid = (int64_t)(knob >> 1); /* 0: nobody */
	size_t plen;
	char *s = fz_str(&f, NULL), *payload = fz_rest(&f, &plen), back[300];
	struct topic t;
	enum topic_kind k = topic_parse(s, is_filter, &t);
	const char *why;

	FZ_CHECK(k == t.kind);
	if (k != TOPIC_INVALID) {
		FZ_CHECK(strlen(s) <= 256);
		FZ_CHECK(!t.wild || is_filter);
		for (int i = 0; i < 3; i++)
			FZ_CHECK(t.id[i] >= 0);
		canonical(&t, back, sizeof(back));
		FZ_CHECK(strcmp(back, s) == 0);
	}
	for (size_t i = 0; i < sizeof(access) / sizeof(access[0]); i++) {
		struct acl_decision d = topic_decide(&t, access[i], uid);

		if (access[i] == ACL_UNSUBSCRIBE) {
			FZ_CHECK(d.need == NEED_ALLOW);
			continue;
		}
		if (k == TOPIC_INVALID || uid <= 0)
			FZ_CHECK(d.need == NEED_DENY);
		if (access[i] == ACL_WRITE && d.need != NEED_DENY) {
			/* only one's own chat/typing topic, or a signal from oneself */
			FZ_CHECK(!t.wild);
			FZ_CHECK((k == TOPIC_CHAT || k == TOPIC_TYPING) ? t.id[1] == uid
				 : k == TOPIC_SIGNAL ? t.id[2] == uid && t.id[1] != uid
						     : 0);
		}
		if (k == TOPIC_INBOX && d.need == NEED_ALLOW)
			FZ_CHECK(t.id[0] == uid && access[i] != ACL_WRITE);
	}
	FZ_CHECK(topic_is_uuid(s) ==
		 (strlen(s) == 36 && strspn(s, "0123456789abcdefABCDEF-") == 36 && s[8] == '-' &&
		  s[13] == '-' && s[18] == '-' && s[23] == '-' && strchr(s, '-') == s + 8 &&
		  strchr(s + 24, '-') == NULL && strcspn(s + 9, "-") == 4 &&
		  strcspn(s + 14, "-") == 4 && strcspn(s + 19, "-") == 4));
	if (topic_chat_payload_ok(payload, (uint32_t)plen, &why) == 0) {
		struct json_object *o = jh_parse(payload, plen), *v;

		FZ_CHECK(!why);
		FZ_CHECK(plen > 0 && plen <= 16 * 1024);
		FZ_CHECK(o && json_object_is_type(o, json_type_object));
		FZ_CHECK(json_object_object_get_ex(o, "id", &v) &&
			 topic_is_uuid(json_object_get_string(v)));
		FZ_CHECK(json_object_object_get_ex(o, "body", &v) &&
			 json_object_is_type(v, json_type_string));
		{
			long n = jh_utf8_len(json_object_get_string(v),
					     (size_t)json_object_get_string_len(v));

			FZ_CHECK(n >= 1 && n <= 4000);
			FZ_CHECK(strlen(json_object_get_string(v)) ==
				 (size_t)json_object_get_string_len(v));
		}
		json_object_put(o);
	} else {
		FZ_CHECK(why && *why);
	}
	free(s);
	free(payload);
	return 0;
}
