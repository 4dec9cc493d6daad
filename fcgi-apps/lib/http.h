/* http: the request and the response of one FastCGI request.
 *
 * http_req_init() builds a request from the FastCGI params (method, raw path,
 * query, client address, request id, headers on demand).  Handlers never write
 * to the stream: they fill req->resp through http_reply_*() and return; the
 * app loop turns it into bytes with http_serialize() and writes them.  All
 * strings a request owns live in its arena and die with it. */
#ifndef TH_HTTP_H
#define TH_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "err.h"

struct json_object;

#define HTTP_MAX_HEADERS 16
#define HTTP_MAX_PARAMS 8
#define HTTP_PATH_MAX 2048
#define HTTP_HEADER_NAME_MAX 64
#define HTTP_HEADER_VALUE_MAX 1024

/* Reads up to n bytes into buf; returns the count, 0 at end of body, -1 on
 * error.  The app loop wires it to FCGX_GetStr; unit tests to a buffer. */
typedef long (*http_read_fn)(void *ctx, char *buf, size_t n);
/* Writes n bytes of the response; 0, or -1 when the client is gone.  The app
 * loop wires it to FCGX_PutStr (libfcgi's buffer: what is written leaves as
 * it fills, so a streamed reply holds a buffer's worth, never the whole). */
typedef int (*http_write_fn)(void *ctx, const char *buf, size_t n);

struct http_header {
	const char *name;
	const char *value;
};

struct http_resp {
	int status;               /* 0 until a reply was set */
	const char *content_type; /* NULL: none */
	struct http_header headers[HTTP_MAX_HEADERS];
	int nheaders;
	const char *body; /* arena-owned or static */
	size_t body_len;
	enum th_err err; /* TH_OK unless an error reply */
};

struct http_req {
	struct arena *arena;
	char **envp; /* FastCGI params; owned by libfcgi */
	http_read_fn read;
	void *read_ctx;

	const char *method;
	const char *path;  /* raw path of REQUEST_URI, without the query */
	const char *query; /* raw query string, "" when none */
	const char *client_addr;
	const char *request_id;   /* nginx's $request_id, "-" when absent */
	long long content_length; /* -1 when absent */

	const char *body; /* after http_read_body(): NUL-terminated */
	size_t body_len;
	struct json_object *json; /* parsed body for JSON routes; put at end */

	/* path parameters, percent-decoded, NUL-terminated, in pattern order */
	const char *param_names[HTTP_MAX_PARAMS];
	size_t param_name_lens[HTTP_MAX_PARAMS];
	const char *params[HTTP_MAX_PARAMS];
	int nparams;

	http_write_fn write; /* NULL: no streaming (unit tests) */
	void *write_ctx;
	int streamed; /* http_stream_begin() sent the head: the loop sends nothing */

	int64_t user_id;    /* authenticated caller, 0 when anonymous */
	int64_t session_id; /* the caller's session (token's sid) */
	struct http_resp resp;
};

/* Fills req from envp.  Never fails: missing params become "" or "-".
 * A path longer than HTTP_PATH_MAX is kept whole; the router rejects it. */
void http_req_init(struct http_req *req, struct arena *a, char **envp, http_read_fn read,
		   void *read_ctx);

/* A FastCGI param by its name ("REQUEST_METHOD"), or NULL. */
const char *http_env(const struct http_req *req, const char *name);
/* A request header by its HTTP name ("Authorization"), or NULL. */
const char *http_header(const struct http_req *req, const char *name);
/* The percent-decoded value of a query parameter, or NULL when absent. */
const char *http_query(const struct http_req *req, const char *name);
/* A path parameter by name (":id" in the pattern is "id"), or NULL. */
const char *http_param(const struct http_req *req, const char *name);

/* Reads the whole body, at most limit bytes, into the arena.  Over the limit
 * (by Content-Length or by the bytes themselves): replies 413 and returns -1.
 * A body shorter than its Content-Length: replies 400 and returns -1. */
int http_read_body(struct http_req *req, size_t limit);

/* Streams the body: reads up to n bytes into buf.  Returns the count, 0 at
 * the end of the body, -1 on a read error.  For ROUTE_STREAM handlers, which
 * must not also call http_read_body(). */
long http_read_chunk(struct http_req *req, char *buf, size_t n);

/* Replies.  Each replaces any earlier reply and its headers, so set headers
 * after the reply.  The json object is consumed
 * (json_object_put) whatever happens. */
void http_reply_json(struct http_req *req, int status, struct json_object *obj);
void http_reply_raw(struct http_req *req, int status, const char *content_type, const char *body,
		    size_t len);
void http_reply_empty(struct http_req *req, int status);
/* {"error":{"code","message","field"?}} with th_err_status(e).  message NULL:
 * the default text.  message and field are cleaned (no control bytes, cut at
 * 200 bytes) because they may quote client input. */
void http_reply_error(struct http_req *req, enum th_err e, const char *message, const char *field);
/* The error object of API.md, for a reply that adds members to it (health's
 * "checks").  NULL when out of memory. */
struct json_object *http_error_json(enum th_err e, const char *message, const char *field);
/* Sends an object made by http_error_json() with the status of e (consumed;
 * NULL gives a static 500). */
void http_reply_error_obj(struct http_req *req, enum th_err e, struct json_object *obj);
/* Sets a header, replacing one of the same name.  -1 when full. */
int http_set_header(struct http_req *req, const char *name, const char *value);
/* Adds a response header (copied into the arena).  -1 when full. */
int http_add_header(struct http_req *req, const char *name, const char *value);

/* Streaming, for a reply too large to hold (GET /api/auth/me/export): the
 * status line and headers (those set so far, no Content-Length) are written
 * at once, then the body in pieces as it is made.  After begin, an error can
 * no longer be replied: a writer that fails stops and leaves the body cut
 * short (the client sees no valid document).  Both: 0, or -1 (no writer,
 * malformed head, or the client is gone). */
int http_stream_begin(struct http_req *req, int status, const char *content_type);
int http_stream_write(struct http_req *req, const char *buf, size_t n);

/* Serializes req->resp as a FastCGI/CGI response into the arena.  Every
 * header is bounded: a name to HTTP_HEADER_NAME_MAX bytes, a value (the
 * Content-Type included) to HTTP_HEADER_VALUE_MAX, control bytes in either
 * replaced; the buffer is sized from those bounds, so nothing a handler set
 * can write past it.  NULL when out of memory or the response is malformed
 * (the loop then sends a static 500). */
char *http_serialize(const struct http_req *req, size_t *len);

/* Percent-decodes n bytes of s into the arena ('+' is a space only when
 * plus_space).  NULL on a bad escape or an embedded NUL. */
char *http_decode(struct arena *a, const char *s, size_t n, bool plus_space);

#endif
