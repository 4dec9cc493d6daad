/* rsrv: throwaway redis-server / sentinel processes for the stack tests of
 * lib/cache (Sentinel, Cluster), on loopback ports TH_PORT_BASE+40..+59,
 * password-protected with the stack's Redis password.  Header-only: each
 * stack test is one file (Makefile).  The tests talk to these servers for
 * set-up (SENTINEL failover, CLUSTER SETSLOT) with hiredis directly: they
 * are not the product, whose only hiredis users are lib/cache's files. */
#ifndef TH_TEST_RSRV_H
#define TH_TEST_RSRV_H

#include <errno.h>
#include <stdarg.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define RSRV_MAX 12

static pid_t rsrv_pids[RSRV_MAX];
static int rsrv_ports[RSRV_MAX];
static char rsrv_dir[64];
static char rsrv_pw[257];

static double rsrv_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int rsrv_base(void)
{
	const char *b = getenv("TH_PORT_BASE");

	return (b ? atoi(b) : 20500) + 40;
}

/* The stack's password and a scratch folder; 0 or -1. */
static int rsrv_setup(void)
{
	const char *file = getenv("TH_REDIS_PASSWORD_FILE");
	FILE *f;
	size_t n;

	if (!file || !(f = fopen(file, "r")))
		return -1;
	n = fread(rsrv_pw, 1, sizeof(rsrv_pw) - 1, f);
	fclose(f);
	while (n > 0 && (rsrv_pw[n - 1] == '\n' || rsrv_pw[n - 1] == '\r'))
		n--;
	rsrv_pw[n] = '\0';
	snprintf(rsrv_dir, sizeof(rsrv_dir), "/tmp/th-rsrv.XXXXXX");
	return mkdtemp(rsrv_dir) && n > 0 ? 0 : -1;
}

/* A connection to 127.0.0.1:port, authenticated; NULL when none. */
static redisContext *rsrv_conn(int port)
{
	struct timeval tv = {1, 0};
	redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
	redisReply *r;

	if (!c || c->err) {
		if (c)
			redisFree(c);
		return NULL;
	}
	redisSetTimeout(c, tv);
	r = redisCommand(c, "AUTH %s", rsrv_pw);
	if (!r || r->type == REDIS_REPLY_ERROR) {
		if (r)
			freeReplyObject(r);
		redisFree(c);
		return NULL;
	}
	freeReplyObject(r);
	return c;
}

/* One command to port, its reply as text into out (status, string, integer
 * or error "ERR..."); -1 when the server could not be reached. */
static int rsrv_cmd(int port, char *out, size_t size, const char *fmt, ...)
{
	redisContext *c = rsrv_conn(port);
	redisReply *r;
	va_list ap;

	out[0] = '\0';
	if (!c)
		return -1;
	va_start(ap, fmt);
	r = redisvCommand(c, fmt, ap);
	va_end(ap);
	if (!r) {
		redisFree(c);
		return -1;
	}
	if (r->type == REDIS_REPLY_INTEGER)
		snprintf(out, size, "%lld", r->integer);
	else if (r->str)
		snprintf(out, size, "%s", r->str);
	freeReplyObject(r);
	redisFree(c);
	return 0;
}

/* Starts redis-server with a config file of `conf` (and --sentinel when
 * sentinel); waits until it answers PING (5 s).  Index or -1. */
static int rsrv_start(int port, int sentinel, const char *conf)
{
	char path[128], buf[8];
	FILE *f;
	pid_t pid;
	int i;
	double t0;

	for (i = 0; i < RSRV_MAX && rsrv_pids[i]; i++)
		;
	if (i == RSRV_MAX)
		return -1;
	snprintf(path, sizeof(path), "%s/%d.conf", rsrv_dir, port);
	f = fopen(path, "w");
	if (!f)
		return -1;
	fprintf(f,
		"port %d\nbind 127.0.0.1\ndaemonize no\ndir %s\nrequirepass %s\n"
		"logfile %s/%d.log\n%s\n",
		port, rsrv_dir, rsrv_pw, rsrv_dir, port, conf);
	if (!sentinel)
		fprintf(f, "save \"\"\nappendonly no\nmasterauth %s\n", rsrv_pw);
	fclose(f);
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		execlp("redis-server", "redis-server", path, sentinel ? "--sentinel" : NULL,
		       (char *)NULL);
		_exit(127);
	}
	rsrv_pids[i] = pid;
	rsrv_ports[i] = port;
	for (t0 = rsrv_now(); rsrv_now() - t0 < 5; usleep(20000))
		if (rsrv_cmd(port, buf, sizeof(buf), "PING") == 0 && strcmp(buf, "PONG") == 0)
			return i;
	return -1;
}

/* Stops the server on port: SIGKILL (a crash) or SIGTERM; waits for it. */
static void rsrv_kill(int port, int sig)
{
	for (int i = 0; i < RSRV_MAX; i++)
		if (rsrv_pids[i] && rsrv_ports[i] == port) {
			kill(rsrv_pids[i], sig);
			waitpid(rsrv_pids[i], NULL, 0);
			rsrv_pids[i] = 0;
		}
}

static void rsrv_teardown(void)
{
	const char *keep = getenv("TH_KEEP_VAR");
	char cmd[128];

	for (int i = 0; i < RSRV_MAX; i++)
		if (rsrv_pids[i]) {
			kill(rsrv_pids[i], SIGKILL);
			waitpid(rsrv_pids[i], NULL, 0);
			rsrv_pids[i] = 0;
		}
	if (rsrv_dir[0] && !(keep && strcmp(keep, "1") == 0)) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", rsrv_dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", rsrv_dir);
	}
}

#endif
