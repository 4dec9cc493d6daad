/* loop: a worker — its own SO_REUSEPORT listening socket on the front's
 * port, one epoll set (level-triggered but for edge sockets while they pump:
 * conn.c, interest()), and the timeouts whose time has come (a timing
 * wheel, tw.h) twice a second.  SIGTERM closes every connection and ends
 * the worker. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <wslay/wslay.h>

#include "conn.h"
#include "front.h"
#include "log.h"
#include "mono.h"

#define EVENTS 256
#define SWEEP_MS 500
/* room kept for the edge socket of every client, logs and the like */
#define FD_RESERVE 64

static volatile sig_atomic_t stopping;

static void on_term(int sig)
{
	(void)sig;
	stopping = 1;
}

static int listen_socket(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons((uint16_t)cfg.port),
				.sin_addr = cfg.bind};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;

	if (fd < 0)
		return -1;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 4096) < 0) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/* A descriptor kept in reserve: out of descriptors (EMFILE), the pending
 * connection stays in the backlog and the level-triggered listener is
 * reported again at once, a worker spinning until one frees.  With the
 * spare closed, that connection is taken and closed (counted), and the
 * spare taken back. */
static int spare_fd = -1;

static void shed_one(int lfd)
{
	int fd;

	if (spare_fd < 0)
		return;
	close(spare_fd);
	spare_fd = -1;
	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd >= 0) {
		atomic_fetch_add(&wk.st->closes[R_MAX_CONNS], 1);
		close(fd);
	}
	spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

static void accept_all(int lfd, int64_t now)
{
	int i;

	for (i = 0; i < 64; i++) {
		struct sockaddr_storage peer;
		socklen_t l = sizeof(peer);
		int fd = accept4(lfd, (struct sockaddr *)&peer, &l, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM)
				log_warn("wsfront: accept: %s", strerror(errno));
			if (errno == EMFILE || errno == ENFILE)
				shed_one(lfd);
			return;
		}
		/* far past the handshake cap (2 descriptors per client): shed at once */
		if (wk.nconns >= cfg.max_conns + FD_RESERVE) {
			atomic_fetch_add(&wk.st->closes[R_MAX_CONNS], 1);
			close(fd);
			continue;
		}
		conn_accept(fd, &peer, now);
	}
}

int loop_run(int id, struct shm *shm)
{
	struct epoll_event evs[EVENTS];
	struct sigaction sa;
	int lfd = -1, status = 1;
	int64_t next_sweep;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	memset(&wk, 0, sizeof(wk));
	wk.id = id;
	wk.shm = shm;
	wk.st = shm_worker(shm, id);
	atomic_store(&wk.st->pid, (int32_t)getpid());
	tw_init(&wk.tw, SWEEP_MS, (int64_t)mono_ms());
	wk.epfd = epoll_create1(EPOLL_CLOEXEC);
	spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (wk.epfd < 0 || conn_init_worker() < 0) {
		log_error("wsfront: worker %d: epoll or wslay set-up failed: %s", id,
			  strerror(errno));
		goto out;
	}
	lfd = listen_socket();
	if (lfd < 0) {
		log_error("wsfront: worker %d: listen on port %d: %s", id, cfg.port,
			  strerror(errno));
		goto out;
	}
	{
		struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};

		if (epoll_ctl(wk.epfd, EPOLL_CTL_ADD, lfd, &ev) < 0)
			goto out;
	}
	log_info("wsfront: worker %d listening on port %d", id, cfg.port);
	next_sweep = (int64_t)mono_ms() + SWEEP_MS;
	while (!stopping) {
		int n = epoll_wait(wk.epfd, evs, EVENTS, SWEEP_MS), i;
		int64_t now = (int64_t)mono_ms();

		if (n < 0 && errno != EINTR) {
			log_error("wsfront: epoll_wait: %s", strerror(errno));
			goto out;
		}
		for (i = 0; i < n; i++) {
			uintptr_t p = (uintptr_t)evs[i].data.ptr;
			struct conn *c = (struct conn *)(p & ~(uintptr_t)1);

			if (!p)
				accept_all(lfd, now);
			else if (conn_is_dead(c))
				continue;
			else if (p & 1)
				conn_edge_event(c, evs[i].events, now);
			else
				conn_client_event(c, evs[i].events, now);
		}
		if (now >= next_sweep) {
			conn_sweep(now);
			next_sweep = now + SWEEP_MS;
		}
		conn_reap();
	}
	status = 0;
out:
	if (lfd >= 0)
		close(lfd);
	conn_close_all((int64_t)mono_ms());
	if (wk.wslay)
		wslay_frame_context_free(wk.wslay);
	if (wk.epfd >= 0)
		close(wk.epfd);
	if (spare_fd >= 0)
		close(spare_fd);
	spare_fd = -1;
	return status;
}
