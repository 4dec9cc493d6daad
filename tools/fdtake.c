/* th-fdtake: run a program with another process's descriptor as its stdin.
 *
 * Usage: th-fdtake PID FD -- PROGRAM [ARGS...]
 * Copies descriptor FD of process PID (pidfd_getfd(2), Linux 5.6+: the
 * caller must be allowed to ptrace PID, i.e. root or the same user when
 * Yama's ptrace_scope is 0) onto descriptor 0 and execs PROGRAM.
 *
 * Why: a pool on TCP (TH_FCGI_BIND) cannot hand over its port the way a
 * pool on a unix socket does (a new socket renamed over the path).  A new
 * pool group started with the old group's listening socket serves the same
 * accept queue: the old workers drain and exit, and the socket, still open
 * in the new group, is never closed, so no connection is reset
 * (scripts/fcgi-pool restart|scale, docs/operations.md).  The descriptor
 * must be a listening TCP socket, so a stale pid cannot hand over anything
 * else.  Exit 2 on usage, 1 when the descriptor cannot be taken; else
 * whatever PROGRAM does. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <unistd.h>

static int parse_int(const char *s, int max, int *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < 0 || v > max)
		return -1;
	*out = (int)v;
	return 0;
}

/* 0 when fd is a listening stream socket of the IPv4 or IPv6 family. */
static int is_tcp_listener(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int v = 0;
	socklen_t vlen = sizeof(v);

	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return -1;
	if (ss.ss_family != AF_INET && ss.ss_family != AF_INET6)
		return -1;
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &vlen) < 0 || !v)
		return -1;
	return 0;
}

int main(int argc, char **argv)
{
	int pid, fd, pidfd = -1, got = -1, rc = 1;

	if (argc < 5 || strcmp(argv[3], "--") != 0 ||
	    parse_int(argv[1], 4194304 /* PID_MAX_LIMIT */, &pid) < 0 || pid == 0 ||
	    parse_int(argv[2], 65535, &fd) < 0) {
		fprintf(stderr, "usage: th-fdtake PID FD -- PROGRAM [ARGS...]\n");
		return 2;
	}
	/* 0-2 open first: started with one closed, pidfd_open would return
	 * it, and the dup2 onto 0 below would replace the pidfd (or close the
	 * socket just placed there) */
	for (;;) {
		int nul = open("/dev/null", O_RDWR);

		if (nul < 0) {
			fprintf(stderr, "th-fdtake: /dev/null: %s\n", strerror(errno));
			return 1;
		}
		if (nul > 2) {
			close(nul);
			break;
		}
	}
	pidfd = pidfd_open(pid, 0);
	if (pidfd < 0) {
		fprintf(stderr, "th-fdtake: pidfd_open %d: %s\n", pid, strerror(errno));
		goto out;
	}
	got = pidfd_getfd(pidfd, fd, 0);
	if (got < 0) {
		fprintf(stderr, "th-fdtake: descriptor %d of %d: %s\n", fd, pid, strerror(errno));
		goto out;
	}
	if (is_tcp_listener(got) < 0) {
		fprintf(stderr, "th-fdtake: descriptor %d of %d is no listening TCP socket\n", fd,
			pid);
		goto out;
	}
	if (got != 0 && dup2(got, 0) < 0) {
		fprintf(stderr, "th-fdtake: dup2: %s\n", strerror(errno));
		goto out;
	}
	if (got != 0)
		close(got);
	got = -1;
	close(pidfd);
	pidfd = -1;
	execv(argv[4], argv + 4);
	fprintf(stderr, "th-fdtake: exec %s: %s\n", argv[4], strerror(errno));
out:
	if (got > 0)
		close(got);
	if (pidfd >= 0)
		close(pidfd);
	return rc;
}
