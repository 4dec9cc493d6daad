/* sentinel: where the Redis master is, asked of Redis Sentinel (part of the
 * cache module: only cache.c calls it).
 *
 * The sentinels are asked in turn, starting with the one that answered last,
 * with SENTINEL get-master-addr-by-name; each gets the cache timeout for its
 * connect and for its reply, but one lookup over all of them ends after two
 * timeouts in total (not 2 x n x timeout): sentinels that accept and never
 * answer cannot add up.  Those the budget left out are asked first by the
 * next lookup.  A sentinel that does not know the name, or is refused, is
 * skipped the same way.  A sentinel given by name is resolved within the
 * budget too (lib/resolve.h). */
#ifndef TH_SENTINEL_H
#define TH_SENTINEL_H

#include <stddef.h>

#define SENTINEL_MAX 16
#define SENTINEL_NAME_MAX 64

/* list: "host:port,host:port,..." ([v6]:port allowed), 1..SENTINEL_MAX;
 * name: the master's name in the sentinels' config; password_file (NULL or
 * "": none): the sentinels' own requirepass.  -1 with a line on stderr when
 * malformed or the file cannot be read. */
int sentinel_init(const char *list, const char *name, const char *password_file);
void sentinel_close(void);

/* The master's address into host/port: 0, or -1 with cache_last_error()
 * saying why (no sentinel answered, none knows the name). */
int sentinel_master(char *host, size_t hostlen, int *port);

#endif
