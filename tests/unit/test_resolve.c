/* Unit tests for resolve: numeric addresses pass through without a lookup,
 * a name from /etc/hosts resolves, a name that cannot be resolved fails
 * within its bound with the reason.  (A DNS server that never answers is
 * tested in tests/cluster, where a namespace's resolv.conf can name one.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "mono.h"
#include "resolve.h"

static void test_numeric(void **state)
{
	char out[INET6_ADDRSTRLEN], why[128];

	(void)state;
	assert_int_equal(resolve_host("10.77.0.31", 1, out, sizeof(out), why, sizeof(why)), 0);
	assert_string_equal(out, "10.77.0.31");
	assert_int_equal(resolve_host("::1", 1, out, sizeof(out), why, sizeof(why)), 0);
	assert_string_equal(out, "::1");
	/* does not fit the caller's buffer */
	assert_int_equal(resolve_host("10.77.0.31", 1, out, 4, why, sizeof(why)), -1);
}

static void test_hosts_file(void **state)
{
	char out[INET6_ADDRSTRLEN], why[128];

	(void)state;
	assert_int_equal(resolve_host("localhost", 2000, out, sizeof(out), why, sizeof(why)), 0);
	assert_true(strcmp(out, "127.0.0.1") == 0 || strcmp(out, "::1") == 0);
}

static void test_unresolvable(void **state)
{
	char out[INET6_ADDRSTRLEN], why[128], longname[300];
	uint64_t t0 = mono_ms();

	(void)state;
	/* .invalid never resolves (RFC 6761): an error from the resolver, or no
	 * answer within the bound when no DNS server answers here */
	assert_int_equal(resolve_host("th-unresolvable.invalid", 1000, out, sizeof(out), why,
				      sizeof(why)),
			 -1);
	assert_true(mono_ms() - t0 < 3000);
	assert_true(why[0] != '\0');
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	assert_int_equal(resolve_host(longname, 1000, out, sizeof(out), why, sizeof(why)), -1);
	assert_string_equal(why, "name too long");
	resolve_reap();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_numeric),
		cmocka_unit_test(test_hosts_file),
		cmocka_unit_test(test_unresolvable),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
