/* Unit tests for lib/metrics: sums across processes, slots, rendering. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "metrics.h"

static char path[256];
static const char *const labels[] = {"GET /a", "POST /b/:id"};

static int setup(void **state)
{
	(void)state;
	snprintf(path, sizeof(path), "/tmp/th-metrics-test.%d", (int)getpid());
	unlink(path);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	metrics_close();
	unlink(path);
	return 0;
}

/* the value on the line that starts with prefix, or -1 */
static long long value_of(const char *text, const char *prefix)
{
	const char *p = strstr(text, prefix);

	return p ? atoll(p + strlen(prefix)) : -1;
}

static void count_workers(int pid, int64_t started, uint64_t requests, void *ctx)
{
	(void)pid;
	(void)started;
	*(uint64_t *)ctx += requests;
}

static void test_sum_across_processes(void **state)
{
	struct arena a;
	size_t len;
	char *text;
	int i, status;
	pid_t kids[3];
	int sync[2];
	char c;

	(void)state;
	assert_int_equal(metrics_open(path, "unit", labels, 2), 0);
	metrics_observe(0, 200, 300);
	assert_int_equal(pipe(sync), 0);
	/* three more processes map the same file and count, as workers do */
	for (i = 0; i < 3; i++) {
		kids[i] = fork();
		assert_true(kids[i] >= 0);
		if (kids[i] == 0) {
			close(sync[1]); /* EOF on sync[0] if the parent dies */
			metrics_close();
			if (metrics_open(path, "unit", labels, 2) < 0)
				_exit(1);
			for (int k = 0; k < 1000; k++)
				metrics_observe(0, 200, 700);
			metrics_observe(1, 404, 2000000);
			/* stay alive until the parent has looked at the slots */
			if (read(sync[0], &c, 1) < 0)
				_exit(1);
			metrics_close();
			_exit(0);
		}
	}
	/* wait until every child has counted */
	for (i = 0; i < 200; i++) {
		uint64_t served = 0;

		if (metrics_workers(path, count_workers, &served) == 4 && served == 3004)
			break;
		usleep(10000);
	}
	{
		uint64_t served = 0;

		assert_int_equal(metrics_workers(path, count_workers, &served), 4);
		assert_int_equal(served, 3004); /* 1 + 3 x 1001 */
	}
	assert_int_equal(write(sync[1], "xxx", 3), 3);
	close(sync[1]);
	close(sync[0]);
	for (i = 0; i < 3; i++) {
		assert_int_equal(waitpid(kids[i], &status, 0), kids[i]);
		assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	arena_init(&a);
	text = metrics_render(&a, &len);
	assert_non_null(text);
	assert_int_equal(value_of(text, "th_http_requests_total{pool=\"unit\",route=\"GET "
					"/a\",class=\"2xx\"} "),
			 3001);
	assert_int_equal(value_of(text, "th_http_requests_total{pool=\"unit\",route=\"POST "
					"/b/:id\",class=\"4xx\"} "),
			 3);
	/* 300 us falls in the first bucket (0.0005 s), 700 us in the second */
	assert_int_equal(value_of(text, "th_http_request_duration_seconds_bucket{pool=\"unit\","
					"route=\"GET /a\",le=\"0.0005\"} "),
			 1);
	assert_int_equal(value_of(text, "th_http_request_duration_seconds_bucket{pool=\"unit\","
					"route=\"GET /a\",le=\"0.001\"} "),
			 3001);
	assert_int_equal(value_of(text, "th_http_request_duration_seconds_bucket{pool=\"unit\","
					"route=\"POST /b/:id\",le=\"1\"} "),
			 0);
	assert_int_equal(value_of(text, "th_http_request_duration_seconds_bucket{pool=\"unit\","
					"route=\"POST /b/:id\",le=\"5\"} "),
			 3);
	assert_int_equal(value_of(text, "th_pool_workers{pool=\"unit\"} "), 1); /* children gone */
	arena_free(&a);
}

static void test_counters_and_relabel(void **state)
{
	static const char *const other[] = {"GET /a", "DELETE /c"};
	struct arena a;
	size_t len;
	char *text;
	int c;

	(void)state;
	assert_int_equal(metrics_open(path, "unit", labels, 2), 0);
	metrics_observe(1, 201, 10);
	c = metrics_counter("cache_hits_total");
	assert_true(c >= 0);
	assert_int_equal(metrics_counter("cache_hits_total"), c);
	metrics_add(c, 5);
	metrics_close();
	/* a build with another route at index 1 resets that route only */
	assert_int_equal(metrics_open(path, "unit", other, 2), 0);
	arena_init(&a);
	text = metrics_render(&a, &len);
	assert_null(strstr(text, "POST /b/:id"));
	assert_int_equal(value_of(text, "th_http_requests_total{pool=\"unit\",route=\"DELETE "
					"/c\",class=\"2xx\"} "),
			 0);
	assert_int_equal(value_of(text, "th_cache_hits_total{pool=\"unit\"} "), 5);
	arena_free(&a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_sum_across_processes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_counters_and_relabel, setup, teardown),
	};

	return cmocka_run_group_tests_name("metrics", tests, NULL, NULL);
}
