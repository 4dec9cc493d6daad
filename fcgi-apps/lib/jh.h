/* jh: JSON helpers on json-c for a request: parsing its body and typed
 * getters (the parser itself, jh_parse(), is the core library's jhcore.h).
 *
 * The *_or_400 getters write the error reply themselves (validation_failed
 * naming the field, or bad_json) and return -1/NULL, so a handler reads
 *     if (jh_string_or_400(req, req->json, "name", 1, 100, JH_REQUIRED, &name) < 0)
 *             return;
 * Lengths are counted in Unicode code points, as API.md's "chars". */
#ifndef TH_JH_H
#define TH_JH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http.h"
#include "jhcore.h"

struct json_object;

/* Hands one reference of o (a json-c object built or parsed for the
 * request, or NULL) to the request: it is put when the request's arena
 * resets, so a handler that leaves early puts nothing by hand.  Returns o;
 * NULL when o was NULL or memory is short (then o is put).  What consumes a
 * reference (http_reply_json, events_emit_json, json_object_object_add)
 * is given another one: json_object_get(o). */
struct json_object *jh_own(struct http_req *req, struct json_object *o);
/* A new empty object / array owned by the request (jh_own); NULL when out
 * of memory. */
struct json_object *jh_object(struct http_req *req);
struct json_object *jh_array(struct http_req *req);

/* Parses req->body, which must be a JSON object, into req->json (released by
 * the app loop).  Replies 400 bad_json and returns -1 otherwise. */
int jh_parse_body_or_400(struct http_req *req);

enum jh_flags {
	JH_REQUIRED = 1u << 0,  /* absent or null is a validation error */
	JH_MULTILINE = 1u << 1, /* allow \n, \r and \t (bodies); other control
				 * characters are always refused */
	JH_NAME = 1u << 2,      /* a name people read as someone's: no invisible
				 * or direction-changing characters (jhcore.h) */
};

/* A string field of min..max code points, valid UTF-8, no NUL, no control
 * characters (but those JH_MULTILINE allows).  Absent or null: *out = NULL
 * and 0 unless JH_REQUIRED.  *out points into obj (lives with it). */
int jh_string_or_400(struct http_req *req, struct json_object *obj, const char *field, size_t min,
		     size_t max, unsigned flags, const char **out);
/* An integer field in [min, max] (JSON integers only; 1.0 and "1" refused). */
int jh_int_or_400(struct http_req *req, struct json_object *obj, const char *field, int64_t min,
		  int64_t max, bool required, bool *present, int64_t *out);
/* A boolean field. */
int jh_bool_or_400(struct http_req *req, struct json_object *obj, const char *field, bool required,
		   bool *present, bool *out);

/* Parses a decimal id in [1, INT64_MAX] from a path parameter; replies 404
 * not_found (an id that cannot exist names nothing) and returns -1 when not. */
int jh_id_or_404(struct http_req *req, const char *s, int64_t *out);

#endif
