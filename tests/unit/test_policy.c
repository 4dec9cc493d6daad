/* Unit tests for lib/policy (the rules on a loaded standing; the SQL that
 * loads it, community_access(), runs in every integration test of the apps)
 * and lib/ids. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>

#include "ids.h"
#include "policy.h"

static struct community std(int is_public, enum role role, int banned)
{
	struct community c = {.id = 7,
			      .is_public = is_public,
			      .owner_id = 1,
			      .my_role = role,
			      .banned = banned};
	return c;
}

static void test_roles(void **state)
{
	(void)state;
	assert_int_equal(role_parse("member"), ROLE_MEMBER);
	assert_int_equal(role_parse("owner"), ROLE_OWNER);
	assert_int_equal(role_parse("Owner"), ROLE_NONE);
	assert_int_equal(role_parse(""), ROLE_NONE);
	assert_int_equal(role_parse(NULL), ROLE_NONE);
	assert_string_equal(role_name(ROLE_MODERATOR), "moderator");
	assert_null(role_name(ROLE_NONE));
	assert_true(ROLE_OWNER > ROLE_ADMIN && ROLE_ADMIN > ROLE_MODERATOR &&
		    ROLE_MODERATOR > ROLE_MEMBER && ROLE_MEMBER > ROLE_NONE);
}

/* private communities are invisible to non-members and to the banned */
static void test_read(void **state)
{
	struct community none = {0}, c;

	(void)state;
	assert_int_equal(policy_decide(&none, 5, ROLE_NONE), TH_ENOTFOUND);
	c = std(1, ROLE_NONE, 0);
	assert_int_equal(policy_decide(&c, 0, ROLE_NONE), TH_OK);
	c = std(1, ROLE_NONE, 1);
	assert_int_equal(policy_decide(&c, 5, ROLE_NONE), TH_OK);
	c = std(0, ROLE_NONE, 0);
	assert_int_equal(policy_decide(&c, 0, ROLE_NONE), TH_ENOTFOUND);
	assert_int_equal(policy_decide(&c, 5, ROLE_NONE), TH_ENOTFOUND);
	c = std(0, ROLE_MEMBER, 0);
	assert_int_equal(policy_decide(&c, 5, ROLE_NONE), TH_OK);
	c = std(0, ROLE_MEMBER, 1);
	assert_int_equal(policy_decide(&c, 5, ROLE_NONE), TH_ENOTFOUND);
}

/* acting: signed in, not banned, a high enough role; 404 comes first */
static void test_act(void **state)
{
	struct community c;

	(void)state;
	c = std(1, ROLE_NONE, 0);
	assert_int_equal(policy_decide(&c, 0, ROLE_MEMBER), TH_EUNAUTHORIZED);
	assert_int_equal(policy_decide(&c, 5, ROLE_MEMBER), TH_EFORBIDDEN);
	c = std(1, ROLE_NONE, 1);
	assert_int_equal(policy_decide(&c, 5, ROLE_MEMBER), TH_EBANNED);
	c = std(1, ROLE_MODERATOR, 0);
	assert_int_equal(policy_decide(&c, 5, ROLE_MEMBER), TH_OK);
	assert_int_equal(policy_decide(&c, 5, ROLE_MODERATOR), TH_OK);
	assert_int_equal(policy_decide(&c, 5, ROLE_ADMIN), TH_EFORBIDDEN);
	c = std(0, ROLE_NONE, 0);
	assert_int_equal(policy_decide(&c, 5, ROLE_OWNER), TH_ENOTFOUND);
	c = std(0, ROLE_OWNER, 0);
	assert_int_equal(policy_decide(&c, 5, ROLE_OWNER), TH_OK);
}

/* a DM: members only read, a muted member (blocked by another) may not act */
static void test_dm(void **state)
{
	struct community c = {.dm = 1};

	(void)state;
	assert_int_equal(policy_decide(&c, 5, ROLE_NONE), TH_ENOTFOUND);
	assert_int_equal(policy_decide(&c, 0, ROLE_NONE), TH_ENOTFOUND);
	c.my_role = ROLE_MEMBER;
	assert_int_equal(policy_decide(&c, 5, ROLE_NONE), TH_OK);
	assert_int_equal(policy_decide(&c, 5, ROLE_MEMBER), TH_OK);
	assert_int_equal(policy_decide(&c, 5, ROLE_MODERATOR), TH_EFORBIDDEN);
	c.muted = 1;
	assert_int_equal(policy_decide(&c, 5, ROLE_NONE), TH_OK);
	assert_int_equal(policy_decide(&c, 5, ROLE_MEMBER), TH_EFORBIDDEN);
}

static void test_ids(void **state)
{
	char buf[24], u[IDS_UUID_LEN + 1];

	(void)state;
	assert_string_equal(ids_text(buf, 0), "0");
	assert_string_equal(ids_text(buf, 1234567890123LL), "1234567890123");
	assert_string_equal(ids_text(buf, INT64_MAX), "9223372036854775807");
	assert_string_equal(ids_text(buf, INT64_MIN), "-9223372036854775808");
	assert_true(ids_uuid_ok("0f8e2c1a-ABCD-4e5f-9a0b-123456789abc", 36));
	assert_false(ids_uuid_ok("0f8e2c1a-ABCD-4e5f-9a0b-123456789ab", 35));
	assert_false(ids_uuid_ok("0f8e2c1a-ABCD-4e5f-9a0b-123456789abg", 36));
	assert_false(ids_uuid_ok("0f8e2c1a0ABCD-4e5f-9a0b-123456789abc", 36));
	assert_false(ids_uuid_ok(NULL, 36));
	ids_uuid_lower(u, "0F8E2C1A-ABCD-4e5f-9A0B-123456789ABC");
	assert_string_equal(u, "0f8e2c1a-abcd-4e5f-9a0b-123456789abc");
}

static void test_ids_array(void **state)
{
	const int64_t one[] = {7}, many[] = {1, -2, INT64_MAX, INT64_MIN};
	char buf[IDS_ARRAY_SIZE(4)], small[IDS_ARRAY_SIZE(4) - 1];

	(void)state;
	assert_int_equal(ids_array(buf, sizeof(buf), NULL, 0), 2);
	assert_string_equal(buf, "{}");
	assert_int_equal(ids_array(buf, sizeof(buf), one, 1), 3);
	assert_string_equal(buf, "{7}");
	assert_int_equal(ids_array(buf, sizeof(buf), many, 4), 47);
	assert_string_equal(buf, "{1,-2,9223372036854775807,-9223372036854775808}");
	/* below IDS_ARRAY_SIZE(n) is refused whatever the ids: no partial array */
	assert_int_equal(ids_array(small, sizeof(small), many, 4), -1);
	assert_string_equal(small, "{}");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roles), cmocka_unit_test(test_read),
		cmocka_unit_test(test_act),   cmocka_unit_test(test_dm),
		cmocka_unit_test(test_ids),   cmocka_unit_test(test_ids_array),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
