/* jhcore: strict JSON parsing on top of json_tokener. */
#include "jhcore.h"

#include <json-c/json.h>
#include <math.h>
#include <stdint.h>

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
		json_object_object_foreach(o, key, val)
		{
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

int jh_has_control(const char *s, size_t n, bool multiline)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == 0x7f ||
		    (c < 0x20 && !(multiline && (c == '\n' || c == '\r' || c == '\t'))))
			return 1;
	}
	return 0;
}

int jh_has_invisible(const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;

	for (size_t i = 0; i + 1 < n; i++) {
		if (u[i] == 0xc2 && u[i + 1] >= 0x80 && u[i + 1] <= 0x9f)
			return 1; /* C1 */
		if (u[i] == 0xd8 && u[i + 1] == 0x9c)
			return 1; /* U+061C */
		if (i + 2 >= n)
			continue;
		if (u[i] == 0xe2 && u[i + 1] == 0x80 &&
		    ((u[i + 2] >= 0x8b && u[i + 2] <= 0x8f) ||
		     (u[i + 2] >= 0xaa && u[i + 2] <= 0xae)))
			return 1; /* U+200B..200F, U+202A..202E */
		if (u[i] == 0xe2 && u[i + 1] == 0x81 && u[i + 2] >= 0xa0 && u[i + 2] <= 0xa9)
			return 1; /* U+2060..2069 */
		if (u[i] == 0xef && u[i + 1] == 0xbb && u[i + 2] == 0xbf)
			return 1; /* U+FEFF */
	}
	return 0;
}

const char *jh_member_str(struct json_object *o, const char *name)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, name, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

int jh_member_int(struct json_object *o, const char *name, int64_t *out)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, name, &v) || !json_object_is_type(v, json_type_int))
		return -1;
	*out = json_object_get_int64(v);
	return 0;
}
