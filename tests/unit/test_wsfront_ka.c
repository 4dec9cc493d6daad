/* Unit tests of the WebSocket front's TCP keepalive (realtime-bridge/front/ka.c):
 * the first probe's idle time spread over [base, base * 1.25], and the
 * options as the kernel reports them back on a real socket. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ka.h"

static void test_idle_spread(void **state)
{
	unsigned lo = ~0u, hi = 0, seen[76] = {0}, distinct = 0;

	(void)state;
	for (uint64_t r = 0; r < 10000; r++) {
		unsigned v = ka_idle(300, r * 0x9e3779b97f4a7c15ull >> 17);

		assert_true(v >= 300 && v <= 375);
		lo = v < lo ? v : lo;
		hi = v > hi ? v : hi;
		distinct += !seen[v - 300]++;
	}
	/* a burst of connections is probed over 75 seconds, not in one */
	assert_int_equal(lo, 300);
	assert_int_equal(hi, 375);
	assert_int_equal(distinct, 76);
	assert_int_equal(ka_idle(0, 12345), 0);
	assert_int_equal(ka_idle(1, 7), 1);
	/* under the kernel's ceiling (32767 s) */
	assert_true(ka_idle(86400, ~0ull) <= 32500);
}

static int opt(int fd, int level, int name)
{
	int v = -1;
	socklen_t l = sizeof(v);

	assert_int_equal(getsockopt(fd, level, name, &v, &l), 0);
	return v;
}

static void test_apply(void **state)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0), idle;

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(ka_apply(fd, 0, 1), 0);
	assert_int_equal(opt(fd, SOL_SOCKET, SO_KEEPALIVE), 0);
	assert_int_equal(ka_apply(fd, 300, 40), 0);
	assert_int_equal(opt(fd, SOL_SOCKET, SO_KEEPALIVE), 1);
	idle = opt(fd, IPPROTO_TCP, TCP_KEEPIDLE);
	assert_int_equal(idle, (int)ka_idle(300, 40));
	assert_int_equal(opt(fd, IPPROTO_TCP, TCP_KEEPINTVL), KA_INTVL_S);
	assert_int_equal(opt(fd, IPPROTO_TCP, TCP_KEEPCNT), KA_PROBES);
	close(fd);
	/* not a socket: refused, reported */
	assert_int_equal(ka_apply(-1, 300, 1), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_idle_spread),
		cmocka_unit_test(test_apply),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
