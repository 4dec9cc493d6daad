/* ka: TCP keepalive on a client socket, its first probe spread per socket. */
#include "ka.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

unsigned ka_idle(unsigned base_s, uint64_t r)
{
	if (base_s == 0)
		return 0;
	/* the kernel takes at most 32767 s (MAX_TCP_KEEPIDLE) */
	if (base_s > 26000)
		base_s = 26000;
	return base_s + (unsigned)(r % (base_s / 4 + 1));
}

int ka_apply(int fd, unsigned base_s, uint64_t r)
{
	int one = 1, idle = (int)ka_idle(base_s, r), intvl = KA_INTVL_S, cnt = KA_PROBES;

	if (base_s == 0)
		return 0;
	if (setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle)) < 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl)) < 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one)) < 0)
		return -1;
	return 0;
}
