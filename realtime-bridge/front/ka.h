/* ka: TCP keepalive on a client socket, its first probe spread per socket. */
#ifndef TH_FRONT_KA_H
#define TH_FRONT_KA_H

#include <stdint.h>

#define KA_INTVL_S 30
#define KA_PROBES 3

/* The idle time before the first probe: base plus up to a quarter of it,
 * picked by r.  Connections opened in a burst would otherwise all be probed
 * in the same second (and again every base seconds): 100,000 loopback
 * clients made bursts that overflowed the kernel's input backlog, lost the
 * probes and their answers, and reset connections that were alive. */
unsigned ka_idle(unsigned base_s, uint64_t r);

/* SO_KEEPALIVE with ka_idle(base_s, r), KA_INTVL_S and KA_PROBES on fd;
 * base_s 0 leaves keepalive off.  0, or -1 when the kernel refused. */
int ka_apply(int fd, unsigned base_s, uint64_t r);

#endif
