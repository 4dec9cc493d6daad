/* Unit tests for limits: the per-user write limits' settings and keys (the
 * Redis side is lib/ratelimit's, tested on a live stack by
 * tests/integration/limits.test.mjs). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "userlimits.h"

static const char *const vars[] = {
	"TH_RL_POST_MAX",        "TH_RL_POST_WINDOW",     "TH_RL_COMMENT_MAX",
	"TH_RL_COMMENT_WINDOW",  "TH_RL_COMMUNITY_MAX",   "TH_RL_COMMUNITY_WINDOW",
	"TH_RL_REACTION_MAX",    "TH_RL_REACTION_WINDOW", "TH_RL_CALL_MAX",
	"TH_RL_CALL_WINDOW",     "TH_RL_MSG_INTERVAL_MS", "TH_RL_MSG_BURST",
	"TH_REACTION_KINDS_MAX",
};

static int clear_env(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
		unsetenv(vars[i]);
	return 0;
}

/* API.md's values when nothing is set */
static void test_defaults(void **state)
{
	(void)state;
	limits_init();
	assert_int_equal(limits.max[LIMIT_POST], 10);
	assert_int_equal(limits.window_s[LIMIT_POST], 60);
	assert_int_equal(limits.max[LIMIT_COMMENT], 30);
	assert_int_equal(limits.window_s[LIMIT_COMMENT], 60);
	assert_int_equal(limits.max[LIMIT_COMMUNITY], 5);
	assert_int_equal(limits.window_s[LIMIT_COMMUNITY], 86400);
	assert_int_equal(limits.max[LIMIT_REACTION], 60);
	assert_int_equal(limits.window_s[LIMIT_REACTION], 60);
	assert_int_equal(limits.max[LIMIT_CALL], 20);
	assert_int_equal(limits.window_s[LIMIT_CALL], 60);
	assert_int_equal(limits.msg_interval_ms, 100);
	assert_int_equal(limits.msg_burst, 30);
	assert_int_equal(limits.reaction_kinds_max, 50);
}

static void test_settings(void **state)
{
	(void)state;
	setenv("TH_RL_POST_MAX", "3", 1);
	setenv("TH_RL_COMMUNITY_WINDOW", "7", 1);
	setenv("TH_RL_MSG_BURST", "5", 1);
	setenv("TH_REACTION_KINDS_MAX", "2", 1);
	limits_init();
	assert_int_equal(limits.max[LIMIT_POST], 3);
	assert_int_equal(limits.window_s[LIMIT_COMMUNITY], 7);
	assert_int_equal(limits.msg_burst, 5);
	assert_int_equal(limits.reaction_kinds_max, 2);
	assert_int_equal(limits.max[LIMIT_COMMENT], 30); /* the others keep theirs */
}

/* a malformed or out-of-range value stops the process (exit 2), as every
 * other setting does: a worker must fail at start, not at a request */
static void assert_refused(const char *var, const char *value)
{
	pid_t pid = fork();
	int st = 0;

	assert_true(pid >= 0);
	if (pid == 0) {
		setenv(var, value, 1);
		if (!freopen("/dev/null", "w", stderr))
			_exit(3);
		limits_init();
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 2);
}

static void test_bad_settings(void **state)
{
	(void)state;
	assert_refused("TH_RL_POST_MAX", "0");
	assert_refused("TH_RL_POST_MAX", "ten");
	assert_refused("TH_RL_CALL_WINDOW", "-1");
	assert_refused("TH_RL_MSG_INTERVAL_MS", "0");
	assert_refused("TH_RL_MSG_BURST", "12x");
	assert_refused("TH_REACTION_KINDS_MAX", "0");
}

/* one key per kind and user; the message key is the one the broker plugin
 * shares (th:rl:msg:<user_id>) */
static void test_keys(void **state)
{
	char k[64];

	(void)state;
	assert_string_equal(limits_key(k, sizeof(k), LIMIT_MESSAGE, 42), "th:rl:msg:42");
	assert_string_equal(limits_key(k, sizeof(k), LIMIT_POST, 7), "th:rl:post:7");
	assert_string_equal(limits_key(k, sizeof(k), LIMIT_COMMENT, 7), "th:rl:comment:7");
	assert_string_equal(limits_key(k, sizeof(k), LIMIT_COMMUNITY, 7), "th:rl:community:7");
	assert_string_equal(limits_key(k, sizeof(k), LIMIT_REACTION, 7), "th:rl:reaction:7");
	assert_string_equal(limits_key(k, sizeof(k), LIMIT_CALL, INT64_MAX),
			    "th:rl:call:9223372036854775807");
	/* a short buffer truncates, never overflows */
	assert_string_equal(limits_key(k, 8, LIMIT_POST, 123456), "th:rl:p");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_defaults, clear_env),
		cmocka_unit_test_setup(test_settings, clear_env),
		cmocka_unit_test_setup(test_bad_settings, clear_env),
		cmocka_unit_test(test_keys),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
