/* epshim (realtime-bridge/epshim): the broker's epoll interest changes kept
 * in memory and applied once before a wait.  Linked into this test, its
 * epoll_* and close() stand in for libc's, as they do preloaded into
 * mosquitto; each case checks what the kernel reports and how many calls
 * reached it. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "epshim.h"

static int ep = -1;

/* the events epoll reports for fd now (0 when none) */
static uint32_t ready(int fd)
{
	struct epoll_event ev[8];
	uint32_t got = 0;
	int n = epoll_wait(ep, ev, 8, 0);

	assert_true(n >= 0);
	for (int i = 0; i < n; i++)
		if (ev[i].data.fd == fd)
			got |= ev[i].events;
	return got;
}

static int add(int fd, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.fd = fd};

	return epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
}

/* mosquitto 2.0.11's mux_epoll__add_out / remove_out: ADD, then MOD on EEXIST */
static void want(int fd, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.fd = fd};

	if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
		assert_int_equal(errno, EEXIST);
		assert_int_equal(epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev), 0);
	}
}

/* the broker's loop: its instance is the first one waited on */
static int setup(void **state)
{
	struct epoll_event ev;

	(void)state;
	ep = epoll_create(16);
	if (ep < 0 || epoll_wait(ep, &ev, 1, 0) < 0)
		return -1;
	return 0;
}

/* out and back in before a wait: nothing reaches the kernel */
static void test_round_trip_costs_nothing(void **state)
{
	int sv[2];
	uint64_t before;

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(add(sv[0], EPOLLIN), 0);
	before = epshim_stats().kernel_calls;
	want(sv[0], EPOLLIN | EPOLLOUT);
	assert_int_equal(write(sv[0], "x", 1), 1);
	want(sv[0], EPOLLIN);
	assert_int_equal(ready(sv[0]), 0);
	assert_int_equal(epshim_stats().kernel_calls, before);
	close(sv[0]);
	close(sv[1]);
}

/* a wish left standing reaches the kernel before the wait, once */
static void test_standing_wish_applied(void **state)
{
	int sv[2];
	uint64_t before;

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(add(sv[0], EPOLLIN), 0);
	before = epshim_stats().kernel_calls;
	want(sv[0], EPOLLIN | EPOLLOUT);
	want(sv[0], EPOLLIN | EPOLLOUT);
	assert_int_equal(ready(sv[0]), EPOLLOUT);
	assert_int_equal(epshim_stats().kernel_calls, before + 1);
	/* back to in only: out is no longer reported, data is */
	want(sv[0], EPOLLIN);
	assert_int_equal(ready(sv[0]), 0);
	assert_int_equal(write(sv[1], "y", 1), 1);
	assert_int_equal(ready(sv[0]), EPOLLIN);
	assert_int_equal(epshim_stats().kernel_calls, before + 2);
	close(sv[0]);
	close(sv[1]);
}

/* a closed descriptor is forgotten: its number, reused, is added for real */
static void test_close_then_reuse(void **state)
{
	int sv[2], sv2[2];

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(add(sv[0], EPOLLIN), 0);
	want(sv[0], EPOLLIN | EPOLLOUT); /* recorded, never applied */
	close(sv[0]);
	close(sv[1]);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv2), 0);
	assert_int_equal(sv2[0], sv[0]); /* the lowest free numbers again */
	assert_int_equal(add(sv2[0], EPOLLIN), 0);
	assert_int_equal(ready(sv2[0]), 0); /* not the dead socket's EPOLLOUT */
	assert_int_equal(write(sv2[1], "z", 1), 1);
	assert_int_equal(ready(sv2[0]), EPOLLIN);
	close(sv2[0]);
	close(sv2[1]);
}

/* DEL reaches the kernel; a MOD after it is refused as the kernel would */
static void test_del_and_unknown(void **state)
{
	int sv[2];
	struct epoll_event ev = {.events = EPOLLIN};
	struct epshim_stats before;

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	ev.data.fd = sv[0];
	assert_int_equal(add(sv[0], EPOLLIN), 0);
	before = epshim_stats();
	assert_int_equal(add(sv[0], EPOLLIN), -1);
	assert_int_equal(errno, EEXIST);
	/* answered here: no call reached the kernel */
	assert_int_equal(epshim_stats().kernel_calls, before.kernel_calls);
	assert_int_equal(epshim_stats().elided, before.elided + 1);
	assert_int_equal(epoll_ctl(ep, EPOLL_CTL_DEL, sv[0], &ev), 0);
	assert_int_equal(epoll_ctl(ep, EPOLL_CTL_MOD, sv[0], &ev), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(write(sv[1], "w", 1), 1);
	assert_int_equal(ready(sv[0]), 0);
	close(sv[0]);
	close(sv[1]);
}

/* A registered socket closed where the shim cannot see it (a raw syscall)
 * and its number taken by a descriptor it did not see made either (dup):
 * the stale EEXIST is healed at the flush, the kernel's ENOENT retried as
 * an ADD, and the new descriptor is polled. */
static void test_unseen_close_heals(void **state)
{
	int sv[2], other[2], fd;

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, other), 0);
	assert_int_equal(add(sv[0], EPOLLIN), 0);
	assert_int_equal(syscall(SYS_close, sv[0]), 0);
	fd = dup(other[0]);
	assert_int_equal(fd, sv[0]);
	want(fd, EPOLLIN | EPOLLOUT); /* EEXIST from memory, then a recorded MOD */
	assert_int_equal(ready(fd), EPOLLOUT);
	close(fd);
	close(sv[1]);
	close(other[0]);
	close(other[1]);
}

/* a new socket clears what was known of its number */
static void test_new_socket_is_fresh(void **state)
{
	int sv[2], fd;
	uint64_t before;

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(add(sv[0], EPOLLIN), 0);
	assert_int_equal(syscall(SYS_close, sv[0]), 0);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(fd, sv[0]);
	before = epshim_stats().kernel_calls;
	assert_int_equal(add(fd, EPOLLOUT), 0); /* added for real */
	assert_int_equal(epshim_stats().kernel_calls, before + 1);
	close(fd);
	close(sv[1]);
}

/* epoll_pwait hands the kernel the recorded wishes too */
static void test_pwait_flushes(void **state)
{
	int sv[2];
	struct epoll_event got;

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(add(sv[0], EPOLLIN), 0);
	want(sv[0], EPOLLIN | EPOLLOUT);
	assert_int_equal(epoll_pwait(ep, &got, 1, 0, NULL), 1);
	assert_int_equal(got.events, EPOLLOUT);
	close(sv[0]);
	close(sv[1]);
}

/* a descriptor added before the instance was tracked (mosquitto adds its
 * listeners and an edge's bridge before its loop first waits) is learnt
 * from the kernel's EEXIST, and its wishes are then kept like the others */
static void test_added_before_tracking(void **state)
{
	int sv[2], other[2], fd;
	struct epoll_event ev = {.events = EPOLLIN};
	uint64_t before;

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, other), 0);
	/* a number the shim knows nothing of, registered behind its back */
	assert_int_equal(syscall(SYS_close, sv[0]), 0);
	fd = dup(other[0]);
	assert_int_equal(fd, sv[0]);
	ev.data.fd = fd;
	assert_int_equal(syscall(SYS_epoll_ctl, ep, EPOLL_CTL_ADD, fd, &ev), 0);
	before = epshim_stats().kernel_calls;
	want(fd, EPOLLIN | EPOLLOUT); /* the kernel's EEXIST, then a recorded MOD */
	assert_int_equal(epshim_stats().kernel_calls, before + 1);
	assert_int_equal(ready(fd), EPOLLOUT); /* the MOD applied */
	assert_int_equal(epshim_stats().kernel_calls, before + 2);
	want(fd, EPOLLIN); /* now answered from memory */
	want(fd, EPOLLIN | EPOLLOUT);
	assert_int_equal(ready(fd), EPOLLOUT);
	assert_int_equal(epshim_stats().kernel_calls, before + 2);
	close(fd);
	close(sv[1]);
	close(other[0]);
	close(other[1]);
}

/* another epoll instance is not tracked: its calls go straight through */
static void test_other_instance(void **state)
{
	int other = epoll_create1(0), sv[2];
	struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT}, got;
	uint64_t before = epshim_stats().kernel_calls;

	(void)state;
	assert_true(other >= 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	ev.data.fd = sv[0];
	assert_int_equal(epoll_ctl(other, EPOLL_CTL_ADD, sv[0], &ev), 0);
	assert_int_equal(epoll_wait(other, &got, 1, 0), 1);
	assert_int_equal(got.events, EPOLLOUT);
	assert_int_equal(epshim_stats().kernel_calls, before);
	close(other);
	close(sv[0]);
	close(sv[1]);
}

/* How many of n non-blocking connects to a unix listener made with
 * listen(backlog) succeed while nothing accepts. */
static int unix_connects(int backlog, int n)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int l, ok = 0, fds[64];

	snprintf(sa.sun_path, sizeof(sa.sun_path), "/tmp/th-epshim-test.%d", (int)getpid());
	unlink(sa.sun_path);
	l = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(l >= 0);
	assert_int_equal(bind(l, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(l, backlog), 0);
	assert_true(n <= 64);
	for (int i = 0; i < n; i++) {
		fds[i] = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
		assert_true(fds[i] >= 0);
		if (connect(fds[i], (struct sockaddr *)&sa, sizeof(sa)) == 0)
			ok++;
		else
			assert_int_equal(errno, EAGAIN); /* the backlog is full */
	}
	for (int i = 0; i < n; i++)
		close(fds[i]);
	close(l);
	unlink(sa.sun_path);
	return ok;
}

/* mosquitto's unix listener asks for 10: it gets room for a burst of 50
 * (the kernel alone would take 11 and answer EAGAIN to the rest) */
static void test_unix_backlog(void **state)
{
	(void)state;
	assert_int_equal(unix_connects(10, 50), 50);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip_costs_nothing),
		cmocka_unit_test(test_standing_wish_applied),
		cmocka_unit_test(test_close_then_reuse),
		cmocka_unit_test(test_del_and_unknown),
		cmocka_unit_test(test_unseen_close_heals),
		cmocka_unit_test(test_new_socket_is_fresh),
		cmocka_unit_test(test_pwait_flushes),
		cmocka_unit_test(test_added_before_tracking),
		cmocka_unit_test(test_other_instance),
		cmocka_unit_test(test_unix_backlog),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
