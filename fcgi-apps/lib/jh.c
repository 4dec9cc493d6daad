/* jh: a request body as JSON, and field getters that reply 400 themselves. */
#include "jh.h"

#include <json-c/json.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "config.h"

static void put_cleanup(void *p)
{
	json_object_put(p);
}

struct json_object *jh_own(struct http_req *req, struct json_object *o)
{
	if (!o)
		return NULL;
	/* on failure arena_defer has put o */
	return arena_defer(req->arena, put_cleanup, o) == 0 ? o : NULL;
}

struct json_object *jh_object(struct http_req *req)
{
	return jh_own(req, json_object_new_object());
}

struct json_object *jh_array(struct http_req *req)
{
	return jh_own(req, json_object_new_array());
}

int jh_parse_body_or_400(struct http_req *req)
{
	struct json_object *obj = jh_parse(req->body ? req->body : "", req->body_len);

	if (!obj || !json_object_is_type(obj, json_type_object)) {
		json_object_put(obj);
		http_reply_error(req, TH_EBADJSON, "request body must be a JSON object", NULL);
		return -1;
	}
	req->json = obj;
	return 0;
}

static int field_get(struct http_req *req, struct json_object *obj, const char *field,
		     bool required, struct json_object **val)
{
	*val = NULL;
	if (!json_object_object_get_ex(obj, field, val) || !*val) {
		if (required) {
			char msg[96];

			snprintf(msg, sizeof(msg), "%s is required", field);
			http_reply_error(req, TH_EVALIDATION, msg, field);
			return -1;
		}
		return 0;
	}
	return 1;
}

int jh_string_or_400(struct http_req *req, struct json_object *obj, const char *field, size_t min,
		     size_t max, unsigned flags, const char **out)
{
	bool required = flags & JH_REQUIRED;
	struct json_object *v;
	const char *s;
	long n;
	int rc;
	char msg[128];

	*out = NULL;
	rc = field_get(req, obj, field, required, &v);
	if (rc <= 0)
		return rc;
	if (!json_object_is_type(v, json_type_string)) {
		snprintf(msg, sizeof(msg), "%s must be a string", field);
		http_reply_error(req, TH_EVALIDATION, msg, field);
		return -1;
	}
	s = json_object_get_string(v);
	if (jh_has_control(s, (size_t)json_object_get_string_len(v), flags & JH_MULTILINE)) {
		snprintf(msg, sizeof(msg), "%s must not contain control characters", field);
		http_reply_error(req, TH_EVALIDATION, msg, field);
		return -1;
	}
	n = jh_utf8_len(s, (size_t)json_object_get_string_len(v));
	if (n < 0 || (size_t)n < min || (size_t)n > max ||
	    strlen(s) != (size_t)json_object_get_string_len(v)) {
		snprintf(msg, sizeof(msg), "%s must be %zu to %zu characters", field, min, max);
		http_reply_error(req, TH_EVALIDATION, msg, field);
		return -1;
	}
	if ((flags & JH_NAME) && jh_has_invisible(s, strlen(s))) {
		snprintf(msg, sizeof(msg),
			 "%s must not contain invisible or direction-changing characters", field);
		http_reply_error(req, TH_EVALIDATION, msg, field);
		return -1;
	}
	*out = s;
	return 0;
}

int jh_int_or_400(struct http_req *req, struct json_object *obj, const char *field, int64_t min,
		  int64_t max, bool required, bool *present, int64_t *out)
{
	struct json_object *v;
	int64_t x;
	int rc;
	char msg[128];

	if (present)
		*present = false;
	rc = field_get(req, obj, field, required, &v);
	if (rc <= 0)
		return rc;
	errno = 0;
	x = json_object_get_int64(v);
	/* json-c clamps an overflowing literal to INT64_MIN/MAX: no field of
	 * ours can legitimately hold those, so they mean "out of range" */
	if (!json_object_is_type(v, json_type_int) || errno == ERANGE || x == INT64_MAX ||
	    x == INT64_MIN || x < min || x > max) {
		snprintf(msg, sizeof(msg), "%s must be an integer in [%lld, %lld]", field,
			 (long long)min, (long long)max);
		http_reply_error(req, TH_EVALIDATION, msg, field);
		return -1;
	}
	if (present)
		*present = true;
	*out = x;
	return 0;
}

int jh_bool_or_400(struct http_req *req, struct json_object *obj, const char *field, bool required,
		   bool *present, bool *out)
{
	struct json_object *v;
	int rc;
	char msg[96];

	if (present)
		*present = false;
	rc = field_get(req, obj, field, required, &v);
	if (rc <= 0)
		return rc;
	if (!json_object_is_type(v, json_type_boolean)) {
		snprintf(msg, sizeof(msg), "%s must be true or false", field);
		http_reply_error(req, TH_EVALIDATION, msg, field);
		return -1;
	}
	if (present)
		*present = true;
	*out = json_object_get_boolean(v);
	return 0;
}

int jh_id_or_404(struct http_req *req, const char *s, int64_t *out)
{
	long long v;

	if (!s || s[0] == '-' || cfg_parse_int(s, 1, INT64_MAX, &v) < 0) {
		http_reply_error(req, TH_ENOTFOUND, NULL, NULL);
		return -1;
	}
	*out = v;
	return 0;
}
