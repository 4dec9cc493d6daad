/* user: the public user object of API.md, shared by every app.
 *
 * USER_COLS selects, from a table aliased u, the columns user_json() reads,
 * in that order; created_at comes out as RFC 3339 UTC with milliseconds. */
#ifndef TH_USER_H
#define TH_USER_H

#include "db.h"

struct json_object;

#define TH_TIME_SQL(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

#define USER_COLS "u.id, u.username, u.display_name, " TH_TIME_SQL("u.created_at")
#define USER_NCOLS 4

/* {id, username, display_name, created_at} from columns col..col+3 of row;
 * NULL when col is NULL (no such user: an erased author, LEFT JOIN). */
struct json_object *user_json(const struct db_res *r, int row, int col);

/* A JSON integer from a decimal column value. */
struct json_object *user_json_int(const char *decimal);

#endif
