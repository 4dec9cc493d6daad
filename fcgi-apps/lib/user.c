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
	struct json_object *o = json_object_new_object();

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
