/* ryw: read-your-writes with a lagging replica.
 *
 * A caller who wrote something in the last TH_RYW_SECONDS (default 10) reads
 * from the primary; everyone else from the read handle (a replica when
 * TH_DB_READ_CONNINFO is set).  The marker is a Redis key per user,
 * th:ryw:<uid>, set after each commit of the caller's write.  When Redis
 * cannot tell, the read goes to the primary.  Without a replica nothing is
 * stored or asked: DB_READ is the primary. */
#ifndef TH_RYW_H
#define TH_RYW_H

#include <stdint.h>

#include "db.h"

/* The handle for a read by uid (0: anonymous, never marked). */
enum db_role ryw_read_role(int64_t uid);
/* uid just committed a write (a lost marker is logged: reads may then go to
 * the replica for a while). */
void ryw_wrote(int64_t uid);

#endif
