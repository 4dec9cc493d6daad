/* dmmirror: a DM's members and their state to the Redis mirror (lib/mirror.h
 * th:dm:<channel>), read from dm_member_state (db/migrations/0018_dms_reads.sql)
 * after the change committed.  The broker plugin reads these keys for the
 * chat/ and typing/ topics of a DM.  Best effort like every mirror write: a
 * failure drops the mirror's marker and the broker rebuilds it from
 * PostgreSQL (scripts/mirror-rebuild). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "log.h"
#include "mirror.h"
#include "realtime.h"

void dm_mirror(int64_t chid)
{
	char c[24];
	const char *params[] = {ids_text(c, chid)};
	struct db_res *r;

	r = db_exec(DB_PRIMARY, "SELECT user_id, muted FROM dm_member_state WHERE channel_id = $1",
		    1, params);
	if (!r) {
		/* the change is committed; the mirror misses it until rebuilt */
		log_warn("dm: cannot read the members of DM %lld for the mirror: %s",
			 (long long)chid, db_last_error());
		return;
	}
	mirror_dm_channel(chid);
	for (int i = 0; i < db_res_rows(r); i++)
		mirror_dm_member(chid, strtoll(db_res_get(r, i, 0), NULL, 10),
				 strcmp(db_res_get(r, i, 1), "t") == 0);
	db_res_free(r);
}

void dm_mirror_gone(int64_t chid, int64_t uid)
{
	mirror_dm_member_gone(chid, uid);
}
