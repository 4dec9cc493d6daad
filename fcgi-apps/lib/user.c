/* user: building the public user object. */
#include "user.h"

#include <json-c/json.h>
#include <stdlib.h>

struct json_object *user_json_int(const char *decimal)
{
	return json_object_new_int64(strtoll(decimal, NULL, 10));
}

struct json_object *user_json(const struct db_res *r, int row, int col)
{
	struct json_object *o;

	/* an erased account's posts, comments and messages (migration 0032):
	 * LEFT JOIN users finds no row, and the author is null */
	if (db_res_isnull(r, row, col))
		return NULL;
	o = json_object_new_object();
	if (!o)
		return NULL;
	json_object_object_add(o, "id", user_json_int(db_res_get(r, row, col)));
	json_object_object_add(o, "username", json_object_new_string(db_res_get(r, row, col + 1)));
	json_object_object_add(o, "display_name",
			       json_object_new_string(db_res_get(r, row, col + 2)));
	json_object_object_add(o, "created_at",
			       json_object_new_string(db_res_get(r, row, col + 3)));
	return o;
}
