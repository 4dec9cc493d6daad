/* http: request parsing and response building over FastCGI params. */
#include "http.h"

#include <ctype.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "log.h"

#define HTTP_TEXT_MAX 200 /* longest client-influenced text in an error reply */

const char *http_env(const struct http_req *req, const char *name)
{
	size_t n = strlen(name);
	char **e;

	if (!req->envp)
		return NULL;
	for (e = req->envp; *e; e++)
		if (strncmp(*e, name, n) == 0 && (*e)[n] == '=')
			return *e + n + 1;
	return NULL;
}

static const char *env_or(const struct http_req *req, const char *name, const char *dflt)
{
	const char *v = http_env(req, name);

	return (v && *v) ? v : dflt;
}

void http_req_init(struct http_req *req, struct arena *a, char **envp, http_read_fn read,
		   void *read_ctx)
{
	const char *uri, *q, *cl;
	long long len;

	memset(req, 0, sizeof(*req));
	req->arena = a;
	req->envp = envp;
	req->read = read;
	req->read_ctx = read_ctx;
	req->method = env_or(req, "REQUEST_METHOD", "GET");
	req->client_addr = env_or(req, "REMOTE_ADDR", "-");
	req->request_id = env_or(req, "REQUEST_ID", "-");

	/* REQUEST_URI is the raw target: the router needs it undecoded so that
	 * an encoded '/' inside a parameter cannot fake a path segment. */
	uri = env_or(req, "REQUEST_URI", "/");
	q = strchr(uri, '?');
	if (q) {
		req->path = arena_strndup(a, uri, (size_t)(q - uri));
		req->query = q + 1;
	} else {
		req->path = uri;
		req->query = "";
	}
	if (!req->path)
		req->path = "/";

	req->content_length = -1;
	cl = http_env(req, "CONTENT_LENGTH");
	if (cl && *cl && cfg_parse_int(cl, 0, INT64_MAX, &len) == 0)
		req->content_length = len;
}

const char *http_header(const struct http_req *req, const char *name)
{
	char key[128] = "HTTP_";
	size_t i, n = 5;

	/* CGI spells Content-Type and Content-Length without the HTTP_ prefix */
	if (strcasecmp(name, "Content-Type") == 0)
		return http_env(req, "CONTENT_TYPE");
	if (strcasecmp(name, "Content-Length") == 0)
		return http_env(req, "CONTENT_LENGTH");
	for (i = 0; name[i] && n + 1 < sizeof(key); i++, n++)
		key[n] = name[i] == '-' ? '_' : (char)toupper((unsigned char)name[i]);
	key[n] = '\0';
	return http_env(req, key);
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

char *http_decode(struct arena *a, const char *s, size_t n, bool plus_space)
{
	char *out = arena_alloc(a, n + 1);
	size_t i, o = 0;

	if (!out)
		return NULL;
	for (i = 0; i < n; i++) {
		char c = s[i];

		if (c == '%') {
			int hi, lo;

			if (i + 2 >= n)
				return NULL;
			hi = hexval((unsigned char)s[i + 1]);
			lo = hexval((unsigned char)s[i + 2]);
			if (hi < 0 || lo < 0)
				return NULL;
			c = (char)(hi * 16 + lo);
			if (c == '\0')
				return NULL;
			i += 2;
		} else if (c == '+' && plus_space) {
			c = ' ';
		}
		out[o++] = c;
	}
	out[o] = '\0';
	return out;
}

const char *http_query(const struct http_req *req, const char *name)
{
	const char *p = req->query;
	size_t n = strlen(name);

	while (p && *p) {
		const char *amp = strchr(p, '&');
		const char *end = amp ? amp : p + strlen(p);
		const char *eq = memchr(p, '=', (size_t)(end - p));
		const char *kend = eq ? eq : end;

		if ((size_t)(kend - p) == n && memcmp(p, name, n) == 0) {
			if (!eq)
				return "";
			return http_decode(req->arena, eq + 1, (size_t)(end - eq - 1), true);
		}
		p = amp ? amp + 1 : NULL;
	}
	return NULL;
}

const char *http_param(const struct http_req *req, const char *name)
{
	size_t n = strlen(name);
	int i;

	for (i = 0; i < req->nparams; i++)
		if (req->param_name_lens[i] == n && memcmp(req->param_names[i], name, n) == 0)
			return req->params[i];
	return NULL;
}

int http_read_body(struct http_req *req, size_t limit)
{
	size_t want, got = 0;
	char *buf;
	long r;

	if (req->content_length > 0 && (unsigned long long)req->content_length > limit) {
		http_reply_error(req, TH_ETOOLARGE, "request body too large", NULL);
		return -1;
	}
	/* nginx always sends Content-Length for a buffered body; without one we
	 * still read, but never more than limit + 1 bytes */
	want = req->content_length >= 0 ? (size_t)req->content_length : limit + 1;
	buf = arena_alloc(req->arena, want + 1);
	if (!buf) {
		http_reply_error(req, TH_EINTERNAL, "out of memory", NULL);
		return -1;
	}
	while (got < want && req->read) {
		r = req->read(req->read_ctx, buf + got, want - got);
		if (r < 0) {
			http_reply_error(req, TH_EBADJSON, "could not read the request body", NULL);
			return -1;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	if (got > limit) {
		http_reply_error(req, TH_ETOOLARGE, "request body too large", NULL);
		return -1;
	}
	if (req->content_length >= 0 && got < (size_t)req->content_length) {
		http_reply_error(req, TH_EVALIDATION,
				 "request body shorter than its Content-Length", NULL);
		return -1;
	}
	buf[got] = '\0';
	req->body = buf;
	req->body_len = got;
	return 0;
}

long http_read_chunk(struct http_req *req, char *buf, size_t n)
{
	return req->read ? req->read(req->read_ctx, buf, n) : 0;
}

static void resp_reset(struct http_req *req, int status)
{
	req->resp.status = status;
	req->resp.content_type = NULL;
	req->resp.body = NULL;
	req->resp.body_len = 0;
	req->resp.err = TH_OK;
	/* headers belong to the reply they were set for */
	req->resp.nheaders = 0;
}

void http_reply_raw(struct http_req *req, int status, const char *content_type, const char *body,
		    size_t len)
{
	resp_reset(req, status);
	req->resp.content_type = content_type;
	req->resp.body = body;
	req->resp.body_len = len;
}

void http_reply_json(struct http_req *req, int status, struct json_object *obj)
{
	const char *s;
	size_t len;
	char *copy;

	if (!obj) {
		http_reply_error(req, TH_EINTERNAL, "out of memory", NULL);
		return;
	}
	s = json_object_to_json_string_length(obj,
					      JSON_C_TO_STRING_PLAIN |
						      JSON_C_TO_STRING_NOSLASHESCAPE,
					      &len);
	copy = s ? arena_strndup(req->arena, s, len) : NULL;
	json_object_put(obj);
	if (!copy) {
		http_reply_error(req, TH_EINTERNAL, "out of memory", NULL);
		return;
	}
	http_reply_raw(req, status, "application/json", copy, len);
}

void http_reply_empty(struct http_req *req, int status)
{
	http_reply_raw(req, status, NULL, "", 0);
}

struct json_object *http_error_json(enum th_err e, const char *message, const char *field)
{
	char msg[HTTP_TEXT_MAX], fld[HTTP_TEXT_MAX];
	struct json_object *root = json_object_new_object();
	struct json_object *err = json_object_new_object();

	if (!root || !err) {
		json_object_put(root);
		json_object_put(err);
		return NULL;
	}
	json_object_object_add(err, "code", json_object_new_string(th_err_code(e)));
	log_clean(msg, sizeof(msg), message ? message : th_strerror(e));
	json_object_object_add(err, "message", json_object_new_string(msg));
	if (field)
		json_object_object_add(err, "field",
				       json_object_new_string(log_clean(fld, sizeof(fld), field)));
	json_object_object_add(root, "error", err);
	return root;
}

void http_reply_error_obj(struct http_req *req, enum th_err e, struct json_object *obj)
{
	static const char oom[] =
		"{\"error\":{\"code\":\"internal\",\"message\":\"out of memory\"}}";

	if (!obj) {
		/* a static body still tells the client what happened */
		http_reply_raw(req, 500, "application/json", oom, sizeof(oom) - 1);
		req->resp.err = TH_EINTERNAL;
		return;
	}
	http_reply_json(req, th_err_status(e), obj);
	if (req->resp.status != th_err_status(e))
		return; /* serializing failed: that reply stands */
	req->resp.err = e;
	/* API.md: 503 and 429 carry Retry-After.  A caller with a precise value
	 * (rate limits) sets it with http_set_header() afterwards. */
	if (e == TH_EUNAVAILABLE || e == TH_ERATELIMITED)
		http_set_header(req, "Retry-After", "5");
}

void http_reply_error(struct http_req *req, enum th_err e, const char *message, const char *field)
{
	http_reply_error_obj(req, e, http_error_json(e, message, field));
}

int http_set_header(struct http_req *req, const char *name, const char *value)
{
	struct http_resp *r = &req->resp;
	char clean[512];
	int i;

	for (i = 0; i < r->nheaders; i++) {
		if (strcasecmp(r->headers[i].name, name) == 0) {
			log_clean(clean, sizeof(clean), value);
			r->headers[i].value = arena_strdup(req->arena, clean);
			return r->headers[i].value ? 0 : -1;
		}
	}
	return http_add_header(req, name, value);
}

int http_add_header(struct http_req *req, const char *name, const char *value)
{
	struct http_resp *r = &req->resp;
	char clean[512];

	if (r->nheaders >= HTTP_MAX_HEADERS)
		return -1;
	/* CR/LF in a value would split the header block */
	log_clean(clean, sizeof(clean), value);
	r->headers[r->nheaders].name = name;
	r->headers[r->nheaders].value = arena_strdup(req->arena, clean);
	if (!r->headers[r->nheaders].value)
		return -1;
	r->nheaders++;
	return 0;
}

static const char *status_text(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 201:
		return "Created";
	case 204:
		return "No Content";
	case 304:
		return "Not Modified";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 409:
		return "Conflict";
	case 413:
		return "Payload Too Large";
	case 415:
		return "Unsupported Media Type";
	case 429:
		return "Too Many Requests";
	case 503:
		return "Service Unavailable";
	default:
		return status >= 500 ? "Internal Server Error" : "Status";
	}
}

/* Appends "name: value\r\n" to out (size bytes, n used) with value cut at
 * HTTP_HEADER_VALUE_MAX bytes and stripped of CR, LF and other control
 * bytes: whatever set it, a value can neither split the header block nor
 * run past the buffer.  0, or -1 when it does not fit (never written past). */
static int put_header(char *out, size_t size, size_t *n, const char *name, const char *value,
		      const char *suffix)
{
	size_t nl = strnlen(name, HTTP_HEADER_NAME_MAX), vl = strnlen(value, HTTP_HEADER_VALUE_MAX);
	size_t sl = strlen(suffix), i;
	char *p;

	if (nl == 0 || *n + nl + 2 + vl + sl + 2 > size)
		return -1;
	p = out + *n;
	for (i = 0; i < nl; i++) /* a name is a token: anything else becomes '-' */
		*p++ = (name[i] > ' ' && name[i] < 127 && name[i] != ':') ? name[i] : '-';
	*p++ = ':';
	*p++ = ' ';
	for (i = 0; i < vl; i++)
		*p++ = ((unsigned char)value[i] < ' ' || value[i] == 127) ? ' ' : value[i];
	memcpy(p, suffix, sl);
	p += sl;
	*p++ = '\r';
	*p++ = '\n';
	*n = (size_t)(p - out);
	return 0;
}

char *http_serialize(const struct http_req *req, size_t *len)
{
	const struct http_resp *r = &req->resp;
	/* every line's bound is known before a byte is written: the status
	 * line (64), Content-Type and Content-Length (each name + value bound
	 * + 24), each header (name + value bounds + 4), the blank line */
	size_t per = HTTP_HEADER_NAME_MAX + HTTP_HEADER_VALUE_MAX + 24;
	size_t size = 64 + 2 * per + (size_t)(r->nheaders > 0 ? r->nheaders : 0) * per + 2 +
		      r->body_len,
	       n;
	int has_body = r->status != 204 && r->status != 304;
	char num[32], *out;
	int i, m;

	*len = 0;
	if (r->nheaders < 0 || r->nheaders > HTTP_MAX_HEADERS || r->status < 100 || r->status > 999)
		return NULL;
	out = arena_alloc(req->arena, size + 1); /* + a NUL after it all */
	if (!out)
		return NULL;
	m = snprintf(out, size, "Status: %d %s\r\n", r->status, status_text(r->status));
	if (m < 0 || (size_t)m >= size)
		return NULL;
	n = (size_t)m;
	if (r->content_type &&
	    put_header(out, size, &n, "Content-Type", r->content_type,
		       strcmp(r->content_type, "application/json") == 0 ? "; charset=utf-8" : "") <
		    0)
		return NULL;
	if (req->streamed) {
		has_body = 0; /* the body follows in pieces, its length unknown */
	} else if (has_body) {
		snprintf(num, sizeof(num), "%zu", r->body_len);
		if (put_header(out, size, &n, "Content-Length", num, "") < 0)
			return NULL;
	}
	for (i = 0; i < r->nheaders; i++)
		if (!r->headers[i].name || !r->headers[i].value ||
		    put_header(out, size, &n, r->headers[i].name, r->headers[i].value, "") < 0)
			return NULL;
	if (n + 2 + (has_body ? r->body_len : 0) > size)
		return NULL;
	memcpy(out + n, "\r\n", 2);
	n += 2;
	if (has_body && r->body_len) {
		memcpy(out + n, r->body, r->body_len);
		n += r->body_len;
	}
	out[n] = '\0';
	*len = n;
	return out;
}

int http_stream_begin(struct http_req *req, int status, const char *content_type)
{
	char *head;
	size_t len;

	if (!req->write || req->streamed)
		return -1;
	req->resp.status = status;
	req->resp.content_type = content_type;
	req->resp.body = NULL;
	req->resp.body_len = 0;
	req->resp.err = TH_OK;
	if (strcmp(req->request_id, "-") != 0 &&
	    http_add_header(req, "X-Request-Id", req->request_id) < 0)
		return -1;
	/* serialized as a stream's head (no Content-Length); streamed stays
	 * set only once the head is out, so a failure here is still answered
	 * (500) by the loop, not left empty */
	req->streamed = 1;
	head = http_serialize(req, &len);
	if (!head) {
		req->streamed = 0;
		http_reply_error(req, TH_EINTERNAL, "out of memory", NULL);
		return -1;
	}
	return req->write(req->write_ctx, head, len);
}

int http_stream_write(struct http_req *req, const char *buf, size_t n)
{
	if (!req->streamed)
		return -1;
	return req->write(req->write_ctx, buf, n);
}
