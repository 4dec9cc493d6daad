/* epshim: preloaded into our Mosquitto brokers (LD_PRELOAD, scripts/stack),
 * it keeps the epoll interest changes of the broker's loop in memory and
 * hands the kernel only the net change, once, before the next wait; and it
 * gives the broker's unix listeners a real backlog (listen(), at the end).
 *
 * Why: Debian's mosquitto 2.0.11 (src/mux_epoll.c, lib/packet_mosq.c) adds
 * EPOLLOUT to a client's socket before every packet it writes and removes
 * it once the write is done, each time with EPOLL_CTL_ADD (which fails with
 * EEXIST) followed by EPOLL_CTL_MOD.  A delivery written whole therefore
 * costs four epoll_ctl() calls around its one write(); two of them poll the
 * socket again.  A profile of an edge fanning out 100,000 deliveries a
 * second had epoll_ctl and the polls it causes among the largest items.
 * Between two waits the broker's net change is nothing unless a write was
 * left unfinished, so nearly all of those calls vanish here.
 *
 * What is tracked: the first epoll instance a thread waits on through
 * epoll_wait() or epoll_pwait() (the broker's loop; an instance a library
 * made and never waits on that way is left alone), from that thread, and,
 * for each descriptor added to it since (or found there by an ADD the
 * kernel refused with EEXIST), the events and data the kernel has and the
 * ones the broker asked for last.
 *   - EPOLL_CTL_ADD of a descriptor known to be registered fails with EEXIST
 *     without a call, as the kernel would; any other ADD goes through.
 *   - EPOLL_CTL_MOD is recorded; before the next wait every descriptor whose
 *     wish differs from the kernel's gets one EPOLL_CTL_MOD.  Edge-triggered,
 *     one-shot or exclusive wishes go through at once.
 *   - EPOLL_CTL_DEL and close() forget the descriptor (the kernel drops a
 *     closed descriptor from the instance by itself), and so does every new
 *     descriptor from socket(), socketpair(), accept() or accept4(): a new
 *     socket that gets a number seen before is added for real.
 *   - A deferred MOD the kernel refuses with ENOENT (the descriptor was
 *     closed by a path not seen here and its number reused by one not seen
 *     either) is retried as an ADD, so interest is never lost.
 * The broker's loop is single-threaded; calls from any other thread (glibc's
 * resolver helpers) go straight to the kernel and leave the tracking alone.
 *
 * Level-triggered semantics are unchanged: the kernel has the broker's
 * latest wish whenever the broker waits, which is the only time the
 * registered interest is read. */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "epshim.h"

/* descriptors above this are passed through (a broker holds < 20,000) */
#define EPSHIM_FD_MAX (1 << 20)
/* interest the kernel has but the shim was not told (no real event set) */
#define EPSHIM_EV_UNKNOWN UINT32_MAX
/* a unix listener's backlog at least (the kernel caps it at somaxconn) */
#define EPSHIM_UNIX_BACKLOG 4096

struct epshim_fd {
	uint32_t kern_ev, want_ev;
	uint64_t kern_data, want_data;
	uint8_t registered, dirty;
};

static struct {
	int (*ctl)(int, int, int, struct epoll_event *);
	int (*wait)(int, struct epoll_event *, int, int);
	int (*pwait)(int, struct epoll_event *, int, int, const sigset_t *);
	int (*close)(int);
	int (*listen)(int, int);
	int (*socket)(int, int, int);
	int (*socketpair)(int, int, int, int[2]);
	int (*accept)(int, struct sockaddr *, socklen_t *);
	int (*accept4)(int, struct sockaddr *, socklen_t *, int);
	int epfd;             /* the tracked instance, -1 before the first wait */
	pthread_t owner;      /* the thread that waits on it */
	struct epshim_fd *fd; /* nfd slots, allocated at the first wait */
	int nfd;
	int *dirty; /* descriptors with a recorded MOD, ndirty of them */
	int ndirty;
	struct epshim_stats st;
} es = {.epfd = -1};

/* libc's functions, looked up once by the constructor (no thread exists
 * yet); a call that comes first (another library's constructor) does it. */
static void resolve(void)
{
	if (es.ctl)
		return;
	es.ctl = (int (*)(int, int, int, struct epoll_event *))dlsym(RTLD_NEXT, "epoll_ctl");
	es.wait = (int (*)(int, struct epoll_event *, int, int))dlsym(RTLD_NEXT, "epoll_wait");
	es.pwait = (int (*)(int, struct epoll_event *, int, int,
			    const sigset_t *))dlsym(RTLD_NEXT, "epoll_pwait");
	es.close = (int (*)(int))dlsym(RTLD_NEXT, "close");
	es.listen = (int (*)(int, int))dlsym(RTLD_NEXT, "listen");
	es.socket = (int (*)(int, int, int))dlsym(RTLD_NEXT, "socket");
	es.socketpair = (int (*)(int, int, int, int[2]))dlsym(RTLD_NEXT, "socketpair");
	es.accept = (int (*)(int, struct sockaddr *, socklen_t *))dlsym(RTLD_NEXT, "accept");
	es.accept4 = (int (*)(int, struct sockaddr *, socklen_t *, int))dlsym(RTLD_NEXT, "accept4");
}

/* The shim is for the broker alone: what it starts (the plugin's mirror
 * rebuild, say) gets no preload, and no sanitized program finds an
 * uninstrumented library ahead of its runtime. */
__attribute__((constructor)) static void epshim_init(void)
{
	resolve();
	unsetenv("LD_PRELOAD");
}

/* Stops tracking (the instance was closed).  The table stays, emptied, for
 * a next instance: no free() while another thread may be in close(). */
static void forget_all(void)
{
	if (es.fd)
		memset(es.fd, 0, (size_t)es.nfd * sizeof(*es.fd));
	es.ndirty = 0;
	es.epfd = -1;
}

/* Starts tracking instance epfd, waited on by this thread: slots for as many
 * descriptors as the process may open (once).  Without memory the instance
 * is simply not tracked. */
static void track(int epfd)
{
	struct rlimit rl;
	size_t n = 65536;

	if (es.epfd >= 0 || epfd < 0)
		return;
	if (!es.fd) {
		if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
			n = rl.rlim_cur;
		if (n > EPSHIM_FD_MAX)
			n = EPSHIM_FD_MAX;
		es.fd = calloc(n, sizeof(*es.fd));
		es.dirty = malloc(n * sizeof(*es.dirty));
		if (!es.fd || !es.dirty) {
			free(es.fd);
			free(es.dirty);
			es.fd = NULL;
			es.dirty = NULL;
			return;
		}
		es.nfd = (int)n;
	}
	es.epfd = epfd;
	es.owner = pthread_self();
}

static int tracked(int epfd, int fd)
{
	return epfd == es.epfd && epfd >= 0 && fd >= 0 && fd < es.nfd &&
	       pthread_equal(pthread_self(), es.owner);
}

/* fd is new, or gone: nothing known of its number is about it any more */
static int fresh(int fd)
{
	if (fd >= 0 && fd < es.nfd && es.fd)
		es.fd[fd].registered = 0;
	return fd;
}

static int kernel_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
	es.st.kernel_calls++;
	return es.ctl(epfd, op, fd, ev);
}

/* Hands the kernel every recorded wish that differs from what it has. */
static void flush(void)
{
	for (int i = 0; i < es.ndirty; i++) {
		struct epshim_fd *s = &es.fd[es.dirty[i]];
		struct epoll_event ev;

		s->dirty = 0;
		if (!s->registered || (s->want_ev == s->kern_ev && s->want_data == s->kern_data))
			continue;
		memset(&ev, 0, sizeof(ev));
		ev.events = s->want_ev;
		ev.data.u64 = s->want_data;
		if (kernel_ctl(es.epfd, EPOLL_CTL_MOD, es.dirty[i], &ev) < 0 &&
		    (errno != ENOENT || kernel_ctl(es.epfd, EPOLL_CTL_ADD, es.dirty[i], &ev) < 0)) {
			/* gone (EBADF): nothing to wait for any more */
			s->registered = 0;
			continue;
		}
		s->kern_ev = s->want_ev;
		s->kern_data = s->want_data;
	}
	es.ndirty = 0;
}

int epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
	struct epshim_fd *s;
	int r;

	resolve();
	if (!tracked(epfd, fd))
		return es.ctl(epfd, op, fd, ev);
	s = &es.fd[fd];
	switch (op) {
	case EPOLL_CTL_ADD:
		if (s->registered) {
			es.st.elided++;
			errno = EEXIST;
			return -1;
		}
		r = kernel_ctl(epfd, op, fd, ev);
		if (r == 0) {
			s->registered = 1;
			s->kern_ev = s->want_ev = ev->events;
			s->kern_data = s->want_data = ev->data.u64;
		} else if (errno == EEXIST) {
			/* added before the first wait (listeners, an edge's
			 * bridge): registered, with interest not known here,
			 * so the next recorded wish is always applied */
			s->registered = 1;
			s->kern_ev = s->want_ev = EPSHIM_EV_UNKNOWN;
			s->kern_data = s->want_data = 0;
			errno = EEXIST;
		}
		return r;
	case EPOLL_CTL_MOD:
		if (!s->registered)
			return kernel_ctl(epfd, op, fd, ev); /* ENOENT, as it should */
		if (ev->events & (EPOLLET | EPOLLONESHOT | EPOLLEXCLUSIVE)) {
			r = kernel_ctl(epfd, op, fd, ev);
			if (r == 0) {
				s->kern_ev = s->want_ev = ev->events;
				s->kern_data = s->want_data = ev->data.u64;
			}
			return r;
		}
		s->want_ev = ev->events;
		s->want_data = ev->data.u64;
		if (!s->dirty) {
			s->dirty = 1;
			es.dirty[es.ndirty++] = fd;
		}
		es.st.elided++;
		return 0;
	case EPOLL_CTL_DEL:
		s->registered = 0;
		return kernel_ctl(epfd, op, fd, ev);
	default:
		return es.ctl(epfd, op, fd, ev);
	}
}

/* Before a wait: the first wait of the process picks the instance to track;
 * a wait on it hands the kernel the recorded wishes first. */
static void before_wait(int epfd)
{
	resolve();
	if (es.epfd < 0)
		track(epfd);
	if (epfd == es.epfd && epfd >= 0 && pthread_equal(pthread_self(), es.owner))
		flush();
}

int epoll_wait(int epfd, struct epoll_event *events, int maxevents, int timeout)
{
	before_wait(epfd);
	return es.wait(epfd, events, maxevents, timeout);
}

int epoll_pwait(int epfd, struct epoll_event *events, int maxevents, int timeout,
		const sigset_t *sigmask)
{
	before_wait(epfd);
	return es.pwait(epfd, events, maxevents, timeout, sigmask);
}

int close(int fd)
{
	resolve();
	if (fd >= 0 && fd == es.epfd && pthread_equal(pthread_self(), es.owner))
		forget_all();
	else
		fresh(fd); /* the kernel drops it from the instance */
	return es.close(fd);
}

int socket(int domain, int type, int protocol)
{
	resolve();
	return fresh(es.socket(domain, type, protocol));
}

int socketpair(int domain, int type, int protocol, int sv[2])
{
	int r;

	resolve();
	r = es.socketpair(domain, type, protocol, sv);
	if (r == 0) {
		fresh(sv[0]);
		fresh(sv[1]);
	}
	return r;
}

int accept(int fd, struct sockaddr *addr, socklen_t *len)
{
	resolve();
	return fresh(es.accept(fd, addr, len));
}

int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
	resolve();
	return fresh(es.accept4(fd, addr, len, flags));
}

/* mosquitto 2.0.11 listens on a unix socket with a backlog of 10
 * (src/net.c).  The fronts reach their edges through those sockets; in a
 * burst of connects (100 tabs of one user, a reconnect storm) the eleventh
 * finds the backlog full, and th-wsfront then takes the edge's TCP port,
 * where every delivery costs the edge the loopback TCP path instead of a
 * unix write (in a profile of one user's fan-out with 100,000 clients held,
 * the edge's samples were in tcp_sendmsg, tcp_ack and the receive path).
 * A TCP listener keeps its own backlog. */
int listen(int fd, int backlog)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	resolve();
	if (backlog < EPSHIM_UNIX_BACKLOG && getsockname(fd, (struct sockaddr *)&ss, &len) == 0 &&
	    ss.ss_family == AF_UNIX)
		backlog = EPSHIM_UNIX_BACKLOG;
	return es.listen(fd, backlog);
}

struct epshim_stats epshim_stats(void)
{
	return es.st;
}
