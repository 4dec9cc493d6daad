/* cluster: Redis Cluster slot routing for lib/cache (only cache.c calls
 * cluster_init/cluster_cmd; the slot functions are pure, for tests too).
 *
 * A command goes to the node serving the slot of its first key: CRC16
 * (XMODEM) of the key, or of its {hash tag} when it has a non-empty one,
 * modulo 16384.  The slot map comes from CLUSTER SLOTS, read before the
 * first command and again after a MOVED or a node that failed; a MOVED
 * sends the command to the node it names, an ASK sends ASKING and then the
 * command to the node it names, once.  At most CLUSTER_REDIRECTS_MAX
 * redirects per command, then it fails.  One connection per node (masters
 * only: no reads from replicas), opened on first use, with the backoff and
 * retry rules of cache.h per node.
 *
 * The keys of one multi-key command or Lua script must share a slot (the
 * server refuses them otherwise: CROSSSLOT): Townhall's key names carry
 * hash tags where that matters (docs/scaling.md, "Redis"). */
#ifndef TH_CLUSTER_H
#define TH_CLUSTER_H

#include <stddef.h>

#define CLUSTER_SLOTS 16384
#define CLUSTER_NODES_MAX 64
#define CLUSTER_REDIRECTS_MAX 5

struct cache_reply;

/* CRC16-CCITT (XMODEM: poly 0x1021, init 0), as Redis Cluster uses it. */
unsigned cluster_crc16(const char *buf, size_t len);
/* The slot of a key (its hash tag's slot when it has one). */
unsigned cluster_key_slot(const char *key, size_t len);
/* The slot a command is routed by: its first key (EVAL/EVALSHA/FCALL: the
 * first of KEYS), or -1 for a command without keys (PING, SCRIPT, INFO). */
int cluster_cmd_slot(int argc, const char *const *argv, const size_t *lens);

/* seeds: "host:port,..." (1..16) to read the slot map from.  -1 with a
 * line on stderr when malformed.  Does not connect. */
int cluster_init(const char *seeds);
void cluster_close(void);
/* As cache_cmd(), routed. */
struct cache_reply *cluster_cmd(int argc, const char **argv, const size_t *lens);
/* cache_data_id() of the node serving key. */
const char *cluster_data_id(const char *key);
/* cache_data_ids() in a Cluster: every master of the slot map (read again,
 * at most every 100 ms; masters not yet connected are connected). */
int cluster_data_ids(char *out, size_t size);

#endif
