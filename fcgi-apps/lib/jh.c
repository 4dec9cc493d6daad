/* jh: strict parsing on top of json_tokener, and field getters. */
#include "jh.h"

#include <json-c/json.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "config.h"

long jh_utf8_len(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;
	long count = 0;

	while (i < n) {
		unsigned char c = p[i];
		size_t k;
		uint32_t cp;

		if (c < 0x80) {
			i++;
			count++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			k = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			k = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			k = 3;
			cp = c & 0x07;
		} else {
			return -1;
		}
		if (i + k >= n)
			return -1;
		for (size_t j = 1; j <= k; j++) {
			if ((p[i + j] & 0xc0) != 0x80)
				return -1;
			cp = (cp << 6) | (p[i + j] & 0x3f);
		}
		/* overlong forms, surrogates, beyond U+10FFFF */
		if ((k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) ||
		    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
			return -1;
		i += k + 1;
		count++;
	}
	return count;
}

/* 1 when every number in o is finite.  json-c reads NaN and Infinity (and
 * turns 1e999 into an infinity), even in strict mode; neither is JSON, and a
 * payload relayed as it is would break every receiver's JSON.parse.  The
 * depth is at most JH_MAX_DEPTH. */
static int all_finite(struct json_object *o)
{
	size_t i, n;

	switch (json_object_get_type(o)) {
	case json_type_double:
		return isfinite(json_object_get_double(o));
	case json_type_array:
		n = json_object_array_length(o);
		for (i = 0; i < n; i++)
			if (!all_finite(json_object_array_get_idx(o, i)))
				return 0;
		return 1;
	case json_type_object: {
		json_object_object_foreach(o, key, val) {
			(void)key;
			if (!all_finite(val))
				return 0;
		}
		return 1;
	}
	default:
		return 1;
	}
}

struct json_object *jh_parse(const char *s, size_t len)
{
	struct json_tokener *tok;
	struct json_object *obj;
	size_t used, i;

	if (len > INT32_MAX || jh_utf8_len(s, len) < 0)
		return NULL;
	tok = json_tokener_new_ex(JH_MAX_DEPTH);
	if (!tok)
		return NULL;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	obj = json_tokener_parse_ex(tok, s, (int)len);
	if (!obj || json_tokener_get_error(tok) != json_tokener_success) {
		/* a complete value followed by nothing yields "continue": treat
		 * anything but success as malformed */
		json_object_put(obj);
		json_tokener_free(tok);
		return NULL;
	}
	used = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	for (i = used; i < len; i++) {
		/* not strchr(" \t\r\n", c): it finds the terminator for a NUL,
		 * which json-c takes as the end of the text */
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n') {
			json_object_put(obj);
			return NULL;
		}
	}
	if (!all_finite(obj)) {
		json_object_put(obj);
		return NULL;
	}
	return obj;
}

int jh_parse_body_or_400(struct http_req *req)
{
	struct json_object *obj = jh_parse(req->body ? req->body : "", req->body_len);

	if (!obj || !json_object_is_type(obj, json_type_object)) {
		json_object_put(obj);
		http_reply_error(req, TH_EBADJSON,
				 "request body must be a JSON object", NULL);
		return -1;
	}
	req->json = obj;
	return 0;
}

static int field_get(struct http_req *req, struct json_object *obj,
		     const char *field, bool required, struct json_object **val)
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

int jh_has_control(const char *s, size_t n, bool multiline)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == 0x7f || (c < 0x20 && !(multiline && (c == '\n' || c == '\r' ||
							     c == '\t'))))
			return 1;
	}
	return 0;
}

int jh_string_or_400(struct http_req *req, struct json_object *obj,
		     const char *field, size_t min, size_t max, unsigned flags,
		     const char **out)
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
		snprintf(msg, sizeof(msg), "%s must be %zu to %zu characters", field,
			 min, max);
		http_reply_error(req, TH_EVALIDATION, msg, field);
		return -1;
	}
	*out = s;
	return 0;
}

int jh_int_or_400(struct http_req *req, struct json_object *obj,
		  const char *field, int64_t min, int64_t max, bool required,
		  bool *present, int64_t *out)
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
	if (!json_object_is_type(v, json_type_int) || errno == ERANGE ||
	    x == INT64_MAX || x == INT64_MIN || x < min || x > max) {
		snprintf(msg, sizeof(msg), "%s must be an integer in [%lld, %lld]",
			 field, (long long)min, (long long)max);
		http_reply_error(req, TH_EVALIDATION, msg, field);
		return -1;
	}
	if (present)
		*present = true;
	*out = x;
	return 0;
}

int jh_bool_or_400(struct http_req *req, struct json_object *obj,
		   const char *field, bool required, bool *present, bool *out)
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
