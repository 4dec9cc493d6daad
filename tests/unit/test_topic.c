/* Unit tests for the broker plugin's pure parts: topic parsing, the ACL
 * decision table of API.md, chat payload checks, and the int map. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "imap.h"
#include "topic.h"

static struct acl_decision decide(const char *s, int access, int64_t uid)
{
	struct topic t;

	topic_parse(s, access == ACL_SUBSCRIBE, &t);
	return topic_decide(&t, access, uid);
}

#define NEED(s, access, uid) (decide((s), (access), (uid)).need)

static void test_parse(void **state)
{
	struct topic t;

	(void)state;
	assert_int_equal(topic_parse("chat/12/7", 0, &t), TOPIC_CHAT);
	assert_int_equal(t.id[0], 12);
	assert_int_equal(t.id[1], 7);
	assert_int_equal(topic_parse("chat/12/+", 1, &t), TOPIC_CHAT);
	assert_true(t.wild);
	assert_int_equal(topic_parse("chat/12/+", 0, &t), TOPIC_INVALID); /* not in a topic */
	assert_int_equal(topic_parse("chat/+/7", 1, &t), TOPIC_INVALID);
	assert_int_equal(topic_parse("chat/+/+", 1, &t), TOPIC_INVALID);
	assert_int_equal(topic_parse("#", 1, &t), TOPIC_INVALID);
	assert_int_equal(topic_parse("chat/#", 1, &t), TOPIC_INVALID);
	assert_int_equal(topic_parse("chat/12/#", 1, &t), TOPIC_INVALID);
	assert_int_equal(topic_parse("$share/g/chat/1/+", 1, &t), TOPIC_INVALID);
	assert_int_equal(topic_parse("chat/012/7", 0, &t), TOPIC_INVALID);
	assert_int_equal(topic_parse("chat/0/7", 0, &t), TOPIC_INVALID);
	assert_int_equal(topic_parse("chat/-1/7", 0, &t), TOPIC_INVALID);
	assert_int_equal(topic_parse("chat/99999999999999999999/7", 0, &t), TOPIC_INVALID);
	assert_int_equal(topic_parse("chat/12/7/", 0, &t), TOPIC_INVALID);
	assert_int_equal(topic_parse("chat/12", 0, &t), TOPIC_INVALID);
	assert_int_equal(topic_parse("chat//7", 0, &t), TOPIC_INVALID);
	assert_int_equal(topic_parse("", 0, &t), TOPIC_INVALID);
	assert_int_equal(topic_parse("typing/3/4", 0, &t), TOPIC_TYPING);
	assert_int_equal(topic_parse("presence/3/+", 1, &t), TOPIC_PRESENCE);
	assert_int_equal(topic_parse("events/community/9", 0, &t), TOPIC_EVENTS);
	assert_int_equal(t.id[0], 9);
	assert_int_equal(topic_parse("events/community/+", 1, &t), TOPIC_INVALID);
	assert_int_equal(topic_parse("events/other/9", 0, &t), TOPIC_INVALID);
	assert_int_equal(topic_parse("signal/5/6/7", 0, &t), TOPIC_SIGNAL);
	assert_int_equal(t.id[2], 7);
	assert_int_equal(topic_parse("signal/5/6/+", 1, &t), TOPIC_SIGNAL);
	assert_int_equal(topic_parse("user/6/inbox", 0, &t), TOPIC_INBOX);
	assert_int_equal(topic_parse("user/+/inbox", 1, &t), TOPIC_INVALID);
	assert_int_equal(topic_parse("user/6/outbox", 0, &t), TOPIC_INVALID);
}

static void test_chat_rules(void **state)
{
	struct acl_decision d;

	(void)state;
	d = decide("chat/12/7", ACL_WRITE, 7);
	assert_int_equal(d.need, NEED_CHANNEL_WRITER);
	assert_int_equal(d.x, 12);
	assert_int_equal(NEED("chat/12/8", ACL_WRITE, 7), NEED_DENY); /* forged sender */
	assert_int_equal(NEED("chat/12/+", ACL_SUBSCRIBE, 7), NEED_CHANNEL_MEMBER);
	assert_int_equal(NEED("chat/12/8", ACL_SUBSCRIBE, 7), NEED_CHANNEL_MEMBER);
	assert_int_equal(NEED("chat/12/8", ACL_READ, 7), NEED_CHANNEL_MEMBER);
	assert_int_equal(NEED("typing/12/7", ACL_WRITE, 7), NEED_CHANNEL_WRITER);
	assert_int_equal(NEED("typing/12/9", ACL_WRITE, 7), NEED_DENY);
	assert_int_equal(NEED("chat/+/+", ACL_SUBSCRIBE, 7), NEED_DENY);
	assert_int_equal(NEED("#", ACL_SUBSCRIBE, 7), NEED_DENY);
	assert_int_equal(NEED("anything/else", ACL_WRITE, 7), NEED_DENY);
	assert_int_equal(NEED("chat/12/7", ACL_WRITE, 0), NEED_DENY); /* no user */
	assert_int_equal(NEED("whatever/#", ACL_UNSUBSCRIBE, 7), NEED_ALLOW);
}

static void test_server_topics(void **state)
{
	struct acl_decision d;

	(void)state;
	assert_int_equal(NEED("presence/3/7", ACL_WRITE, 7), NEED_DENY);
	assert_int_equal(NEED("presence/3/+", ACL_SUBSCRIBE, 7), NEED_COMMUNITY_MEMBER);
	assert_int_equal(NEED("presence/3/8", ACL_READ, 7), NEED_COMMUNITY_MEMBER);
	assert_int_equal(NEED("events/community/3", ACL_WRITE, 7), NEED_DENY);
	d = decide("events/community/3", ACL_SUBSCRIBE, 7);
	assert_int_equal(d.need, NEED_COMMUNITY_READER);
	assert_int_equal(d.x, 3);
	assert_int_equal(NEED("user/7/inbox", ACL_SUBSCRIBE, 7), NEED_ALLOW);
	assert_int_equal(NEED("user/7/inbox", ACL_READ, 7), NEED_ALLOW);
	assert_int_equal(NEED("user/8/inbox", ACL_SUBSCRIBE, 7), NEED_DENY);
	assert_int_equal(NEED("user/7/inbox", ACL_WRITE, 7), NEED_DENY);
}

static void test_signal_rules(void **state)
{
	struct acl_decision d;

	(void)state;
	d = decide("signal/5/8/7", ACL_WRITE, 7); /* from 7 to 8 in call 5 */
	assert_int_equal(d.need, NEED_CALL_PAIR);
	assert_int_equal(d.x, 5);
	assert_int_equal(d.y, 8);
	assert_int_equal(NEED("signal/5/8/9", ACL_WRITE, 7), NEED_DENY); /* forged from */
	assert_int_equal(NEED("signal/5/7/7", ACL_WRITE, 7), NEED_DENY); /* to oneself */
	assert_int_equal(NEED("signal/5/7/+", ACL_SUBSCRIBE, 7), NEED_CALL_MEMBER);
	assert_int_equal(NEED("signal/5/8/+", ACL_SUBSCRIBE, 7), NEED_DENY); /* others' */
	assert_int_equal(NEED("signal/5/7/8", ACL_READ, 7), NEED_CALL_MEMBER);
	assert_int_equal(NEED("signal/5/8/7", ACL_READ, 7), NEED_DENY);
}

static void test_chat_payload(void **state)
{
	static char big[4002 * 2 + 100], body[4002];
	const char *why;
	const char *ok = "{\"id\":\"0b8a3c4e-1f2a-4c3b-9d8e-7f6a5b4c3d2e\",\"body\":\"hi\"}";
	const char *reply = "{\"id\":\"0b8a3c4e-1f2a-4c3b-9d8e-7f6a5b4c3d2e\",\"body\":\"hi\","
			    "\"reply_to\":\"1b8a3c4e-1f2a-4c3b-9d8e-7f6a5b4c3d2e\"}";

	(void)state;
	assert_int_equal(topic_chat_payload_ok(ok, (uint32_t)strlen(ok), &why), 0);
	assert_int_equal(topic_chat_payload_ok(reply, (uint32_t)strlen(reply), &why), 0);
	assert_int_equal(topic_chat_payload_ok("hi", 2, &why), -1);
	assert_int_equal(topic_chat_payload_ok("{\"id\":\"x\",\"body\":\"hi\"}", 22, &why), -1);
	assert_string_equal(why, "id must be a UUID");
	assert_int_equal(topic_chat_payload_ok("{\"id\":\"0b8a3c4e-1f2a-4c3b-9d8e-7f6a5b4c3d2e\","
					       "\"body\":\"\"}",
					       54, &why),
			 -1);
	assert_int_equal(topic_chat_payload_ok("{\"id\":\"0b8a3c4e-1f2a-4c3b-9d8e-7f6a5b4c3d2e\","
					       "\"body\":5}",
					       53, &why),
			 -1);
	memset(body, 'a', 4001);
	body[4001] = '\0';
	snprintf(big, sizeof(big),
		 "{\"id\":\"0b8a3c4e-1f2a-4c3b-9d8e-7f6a5b4c3d2e\",\"body\":\"%s\"}", body);
	assert_int_equal(topic_chat_payload_ok(big, (uint32_t)strlen(big), &why), -1);
	body[4000] = '\0'; /* exactly 4000 */
	snprintf(big, sizeof(big),
		 "{\"id\":\"0b8a3c4e-1f2a-4c3b-9d8e-7f6a5b4c3d2e\",\"body\":\"%s\"}", body);
	assert_int_equal(topic_chat_payload_ok(big, (uint32_t)strlen(big), &why), 0);
	assert_int_equal(topic_chat_payload_ok(ok, 17 * 1024, &why), -1); /* over 16 KiB */
	assert_true(topic_is_uuid("0B8A3C4E-1F2A-4C3B-9D8E-7F6A5B4C3D2E"));
	assert_false(topic_is_uuid("0b8a3c4e1f2a4c3b9d8e7f6a5b4c3d2e"));
	/* the hub's origin stamp: a broker id that is also one topic level */
	assert_true(topic_origin_ok("e0"));
	assert_true(topic_origin_ok("edge_12-b"));
	assert_true(topic_origin_ok("abcdefghijklmno")); /* 15 bytes */
	assert_false(topic_origin_ok("abcdefghijklmnop"));
	assert_false(topic_origin_ok(""));
	assert_false(topic_origin_ok("e0/user"));
	assert_false(topic_origin_ok("e+"));
	assert_false(topic_origin_ok("e#"));
}

static void test_imap(void **state)
{
	struct imap m;
	int64_t i;

	(void)state;
	assert_int_equal(imap_init(&m, 4), 0);
	for (i = 1; i <= 5000; i++)
		assert_int_equal(imap_put(&m, i * 7919, i), 0);
	assert_int_equal(m.len, 5000);
	for (i = 1; i <= 5000; i += 2)
		assert_int_equal(imap_del(&m, i * 7919), 1);
	assert_int_equal(imap_del(&m, 7919), 0);
	for (i = 1; i <= 5000; i++) {
		int64_t *v = imap_get(&m, i * 7919);

		if (i % 2)
			assert_null(v);
		else
			assert_int_equal(*v, i);
	}
	assert_int_equal(imap_put(&m, 0, 1), -1); /* 0 is reserved */
	imap_free(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),         cmocka_unit_test(test_chat_rules),
		cmocka_unit_test(test_server_topics), cmocka_unit_test(test_signal_rules),
		cmocka_unit_test(test_chat_payload),  cmocka_unit_test(test_imap),
	};

	return cmocka_run_group_tests_name("plugin topic/acl", tests, NULL, NULL);
}
