/* Redis Cluster key slots (lib/cluster.c): CRC16-XMODEM and hash tags, with
 * the values the Redis cluster specification and CLUSTER KEYSLOT give. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>

#include "cluster.h"

static unsigned slot(const char *k)
{
	return cluster_key_slot(k, strlen(k));
}

static void test_crc16(void **state)
{
	(void)state;
	/* the specification's check value */
	assert_int_equal(cluster_crc16("123456789", 9), 0x31C3);
	assert_int_equal(cluster_crc16("", 0), 0);
}

static void test_known_slots(void **state)
{
	(void)state;
	/* CLUSTER KEYSLOT on a real server */
	assert_int_equal(slot("foo"), 12182);
	assert_int_equal(slot("bar"), 5061);
	assert_int_equal(slot("hello"), 866);
	assert_int_equal(slot("somekey"), 11058);
	assert_int_equal(slot("123456789"), 0x31C3 & 16383);
}

static void test_hash_tags(void **state)
{
	(void)state;
	/* the specification's examples */
	assert_int_equal(slot("{user1000}.following"), slot("user1000"));
	assert_int_equal(slot("{user1000}.followers"), slot("user1000"));
	assert_int_equal(slot("foo{}{bar}"),
			 cluster_crc16("foo{}{bar}", 10) & 16383); /* empty tag: whole key */
	assert_int_equal(slot("foo{{bar}}zap"), slot("{bar"));     /* the tag is "{bar" */
	assert_int_equal(slot("foo{bar}{zap}"), slot("bar"));      /* the first tag only */
	assert_int_equal(slot("foo{bar"),
			 cluster_crc16("foo{bar", 7) & 16383); /* no closing brace */
	/* Townhall's keys that must share a slot */
	assert_int_equal(slot("th:{revoked}"), slot("th:{revoked}:epoch"));
	assert_int_equal(slot("th:feedver:{c42}"), slot("th:accver:{c42}"));
	assert_int_equal(slot("th:feed:{c42}:v17:20"), slot("th:acc:{c42}:v3:7"));
	assert_int_equal(slot("th:presence:{brokers}:live"),
			 slot("th:presence:{brokers}:reap:b0/1"));
	/* binary-safe: a NUL inside the tag counts */
	assert_int_not_equal(cluster_key_slot("{a\0b}", 5), slot("{a}"));
}

static void test_command_slot(void **state)
{
	const char *get[] = {"GET", "foo"};
	const char *ping[] = {"PING"};
	const char *script[] = {"SCRIPT", "LOAD", "return 1"};
	const char *eval1[] = {"EVALSHA", "abc", "1", "bar", "x"};
	const char *eval0[] = {"EVAL", "return 1", "0"};
	size_t l[5];

	(void)state;
#define LENS(a)                                                       \
	do {                                                          \
		for (size_t i = 0; i < sizeof(a) / sizeof(a[0]); i++) \
			l[i] = strlen(a[i]);                          \
	} while (0)
	LENS(get);
	assert_int_equal(cluster_cmd_slot(2, get, l), 12182);
	LENS(ping);
	assert_int_equal(cluster_cmd_slot(1, ping, l), -1);
	LENS(script);
	assert_int_equal(cluster_cmd_slot(3, script, l), -1);
	LENS(eval1);
	assert_int_equal(cluster_cmd_slot(5, eval1, l), 5061);
	LENS(eval0);
	assert_int_equal(cluster_cmd_slot(3, eval0, l), -1);
#undef LENS
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crc16),
		cmocka_unit_test(test_known_slots),
		cmocka_unit_test(test_hash_tags),
		cmocka_unit_test(test_command_slot),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
