/* Unit tests for slots: the host-wide limit on concurrent password hashes.
 * Real processes (fork) share a real file; nothing is mocked. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "slots.h"

static char path[64];
static pid_t child; /* a forked helper a failed assertion may leave behind */

static int setup(void **state)
{
	int fd;

	(void)state;
	snprintf(path, sizeof(path), "/tmp/th-slots-test.XXXXXX");
	fd = mkstemp(path);
	if (fd < 0)
		return -1;
	close(fd);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	if (child > 0) {
		kill(child, SIGKILL);
		waitpid(child, NULL, 0);
		child = 0;
	}
	unlink(path);
	return 0;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void test_bad_limits(void **state)
{
	(void)state;
	errno = 0;
	assert_null(slots_open(path, 0));
	assert_int_equal(errno, EINVAL);
	assert_null(slots_open(path, SLOTS_MAX + 1));
	assert_null(slots_open("/nonexistent-dir/x.slots", 1));
	slots_close(NULL);
}

static void test_limit_and_release(void **state)
{
	struct slots *s = slots_open(path, 2);
	int a, b, c, waited = -1;
	uint64_t t0;

	(void)state;
	assert_non_null(s);
	a = slots_acquire(s, 0, &waited);
	assert_true(a >= 0);
	assert_int_equal(waited, 0);
	b = slots_acquire(s, 0, NULL);
	assert_true(b >= 0 && b != a);
	assert_int_equal(slots_busy(s), 2);
	/* full: the third caller waits its timeout, then gives up */
	t0 = now_ms();
	errno = 0;
	assert_int_equal(slots_acquire(s, 150, &waited), -1);
	assert_int_equal(errno, ETIMEDOUT);
	assert_int_equal(waited, 1);
	assert_true(now_ms() - t0 >= 150);
	/* a released slot is free again, for another opener with its own limit */
	slots_release(s, a);
	assert_int_equal(slots_busy(s), 1);
	{
		struct slots *other = slots_open(path, 2);

		assert_non_null(other);
		c = slots_acquire(other, 0, NULL);
		assert_true(c >= 0);
		assert_int_equal(slots_busy(s), 2);
		/* a caller with a higher limit is not held by the lower one */
		slots_close(other);
		other = slots_open(path, 3);
		assert_non_null(other);
		a = slots_acquire(other, 0, NULL);
		assert_true(a >= 0);
		assert_int_equal(slots_busy(s), 3);
		slots_release(other, a);
		slots_release(other, c);
		slots_close(other);
	}
	slots_release(s, b);
	assert_int_equal(slots_busy(s), 0);
	/* out-of-range indexes are ignored */
	slots_release(s, -1);
	slots_release(s, SLOTS_MAX);
	slots_close(s);
}

/* A waiter in another process is woken by the release itself, not by its
 * SLOTS_RECHECK_MS recheck: 20 hand-overs, each timed from the release to
 * the waiter's return.  Woken by the recheck alone they would average
 * SLOTS_RECHECK_MS / 2 each; by the release, a scheduling delay. */
static void test_waiter_woken_by_release(void **state)
{
	enum { HANDOVERS = 20 };
	struct slots *s = slots_open(path, 1);
	int held, status, go[2], back[2], i;
	uint64_t t_rel, t_acq, total = 0;
	pid_t pid;

	(void)state;
	assert_non_null(s);
	assert_int_equal(pipe(go), 0);
	assert_int_equal(pipe(back), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char c;

		close(go[1]);
		close(back[0]);
		while (read(go[0], &c, 1) == 1) {
			int slot = slots_acquire(s, 5000, NULL);
			uint64_t t = now_ms();

			if (slot < 0)
				_exit(1);
			if (write(back[1], &t, sizeof(t)) != (ssize_t)sizeof(t))
				_exit(2);
			slots_release(s, slot);
		}
		_exit(0);
	}
	child = pid;
	close(go[0]);
	close(back[1]);
	for (i = 0; i < HANDOVERS; i++) {
		held = slots_acquire(s, 5000, NULL);
		assert_true(held >= 0);
		assert_int_equal(write(go[1], "x", 1), 1);
		usleep(20 * 1000); /* the child is asleep in its wait by now */
		t_rel = now_ms();
		slots_release(s, held);
		assert_int_equal(read(back[0], &t_acq, sizeof(t_acq)), (ssize_t)sizeof(t_acq));
		total += t_acq - t_rel;
	}
	close(go[1]);
	close(back[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	child = 0;
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	print_message("%d hand-overs took %llu ms in all\n", HANDOVERS, (unsigned long long)total);
	assert_true(total < HANDOVERS * SLOTS_RECHECK_MS * 3 / 10);
	assert_int_equal(slots_busy(s), 0);
	slots_close(s);
}

/* A holder that dies without releasing (a crash, SIGKILL) does not keep its
 * slot: a waiter reclaims it. */
static void test_dead_holder_reclaimed(void **state)
{
	struct slots *s = slots_open(path, 1);
	int slot, status;
	pid_t pid;

	(void)state;
	assert_non_null(s);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (slots_acquire(s, 0, NULL) < 0)
			_exit(1);
		pause(); /* hold it until killed */
		_exit(0);
	}
	child = pid;
	/* wait until the child holds it */
	for (int i = 0; i < 200 && slots_busy(s) == 0; i++)
		usleep(10 * 1000);
	assert_int_equal(slots_acquire(s, 0, NULL), -1);
	assert_int_equal(kill(pid, SIGKILL), 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	child = 0;
	assert_true(WIFSIGNALED(status));
	slot = slots_acquire(s, 2000, NULL);
	assert_true(slot >= 0);
	assert_int_equal(slots_busy(s), 1);
	slots_release(s, slot);
	slots_close(s);
}

/* A holder that exited without releasing and whose parent has not reaped it
 * yet (a zombie: kill(pid, 0) still succeeds) holds nothing either: a waiter
 * takes its slot without waiting for the parent. */
static void test_zombie_holder_reclaimed(void **state)
{
	struct slots *s = slots_open(path, 1);
	int slot, status;
	pid_t pid;

	(void)state;
	assert_non_null(s);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(slots_acquire(s, 0, NULL) < 0 ? 1 : 0); /* exits holding it */
	child = pid;
	/* it is a zombie once waitid(WNOWAIT) sees it exited: not reaped */
	{
		siginfo_t si;

		memset(&si, 0, sizeof(si));
		assert_int_equal(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT), 0);
		assert_int_equal(si.si_status, 0);
	}
	assert_int_equal(kill(pid, 0), 0);
	slot = slots_acquire(s, 500, NULL);
	assert_true(slot >= 0);
	slots_release(s, slot);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	child = 0;
	slots_close(s);
}

/* Several processes hammering one slot pair: never more than the limit
 * inside at once, and every one of them gets through. */
static void test_never_over_limit(void **state)
{
	enum { PROCS = 6, ROUNDS = 200, LIMIT = 2 };
	struct slots *s = slots_open(path, LIMIT);
	int i, status, failed = 0;
	pid_t pids[PROCS];

	(void)state;
	assert_non_null(s);
	for (i = 0; i < PROCS; i++) {
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0) {
			for (int r = 0; r < ROUNDS; r++) {
				int slot = slots_acquire(s, 10000, NULL);

				if (slot < 0)
					_exit(1);
				if (slots_busy(s) > LIMIT)
					_exit(2);
				slots_release(s, slot);
			}
			_exit(0);
		}
	}
	for (i = 0; i < PROCS; i++) {
		assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			failed++;
	}
	assert_int_equal(failed, 0);
	assert_int_equal(slots_busy(s), 0);
	slots_close(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_bad_limits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_limit_and_release, setup, teardown),
		cmocka_unit_test_setup_teardown(test_waiter_woken_by_release, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dead_holder_reclaimed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_zombie_holder_reclaimed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_never_over_limit, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
