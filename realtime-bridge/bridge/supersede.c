/* supersede: outbox events made old within a relay batch (supersede.h). */
#include <json-c/json.h>
#include <string.h>

#include "supersede.h"

enum { KEY_NONE, KEY_UNREAD, KEY_ACTIVITY };

static int64_t positive_int(struct json_object *o, const char *k)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, k, &v) || !json_object_is_type(v, json_type_int))
		return 0;
	return json_object_get_int64(v) > 0 ? json_object_get_int64(v) : 0;
}

struct supersede_key supersede_key_of(struct json_object *o)
{
	struct supersede_key k = {KEY_NONE, 0, 0};
	struct json_object *v;
	const char *type;

	if (!o || !json_object_is_type(o, json_type_object) ||
	    !json_object_object_get_ex(o, "type", &v) || !json_object_is_type(v, json_type_string))
		return k;
	type = json_object_get_string(v);
	if (strcmp(type, "unread") == 0) {
		k.a = positive_int(o, "user_id");
		k.b = positive_int(o, "channel_id");
		/* an unread event routed some other way (an inbox list) is kept */
		if (k.a && k.b && !json_object_object_get_ex(o, "inbox", NULL))
			k.kind = KEY_UNREAD;
	} else if (strcmp(type, "channel_activity") == 0) {
		k.a = positive_int(o, "community_id");
		k.b = positive_int(o, "channel_id");
		/* routed to the community alone, as message_store() writes it */
		if (k.a && k.b && !json_object_object_get_ex(o, "inbox", NULL) &&
		    !json_object_object_get_ex(o, "user_id", NULL))
			k.kind = KEY_ACTIVITY;
	}
	return k;
}

void supersede_mark(const struct supersede_key *keys, int n, unsigned char *old)
{
	/* a relay batch is small (RELAY_BATCH): the quadratic scan is cheaper
	 * than a table */
	for (int i = 0; i < n; i++) {
		old[i] = 0;
		if (keys[i].kind == KEY_NONE)
			continue;
		for (int j = i + 1; j < n; j++)
			if (keys[j].kind == keys[i].kind && keys[j].a == keys[i].a &&
			    keys[j].b == keys[i].b) {
				old[i] = 1;
				break;
			}
	}
}
