/* epshim: the shim preloaded into our brokers (see epshim.c): their epoll
 * interest changes applied once before each wait, and a unix listener's
 * backlog.  It defines epoll_ctl, epoll_wait, epoll_pwait, close, listen,
 * socket, socketpair, accept and accept4 over libc's; this header only adds
 * its counters, for its tests. */
#ifndef TH_EPSHIM_H
#define TH_EPSHIM_H

#include <stdint.h>

struct epshim_stats {
	uint64_t kernel_calls; /* epoll_ctl() calls that reached the kernel */
	uint64_t elided;       /* ADDs answered EEXIST and MODs recorded */
};

struct epshim_stats epshim_stats(void);

#endif
