/* storage_s3: an S3-compatible object store through libcurl.
 *
 * Requests are signed by libcurl (CURLOPT_AWS_SIGV4 "aws:amz:<region>:s3",
 * key and secret as CURLOPT_USERPWD); URLs are path-style
 * (<endpoint>/<bucket>/<key>, TH_S3_PATH_STYLE=1, the default: what local
 * S3-compatible servers answer) or virtual-host style
 * (<scheme>://<bucket>.<host>/<key>).
 *
 * Downloads: the app answers 302 to a presigned URL (X-Amz-Expires 300 s)
 * and the client fetches the bytes from the store, which does Range and
 * ETag itself.  Presigning is the one signature written here: libcurl signs
 * requests it sends, it cannot presign a URL for someone else.  Proxying
 * through nginx would need the same presigned URL (nginx cannot sign), and
 * would put the store's bandwidth through our origin; a redirect keeps
 * nginx out of it.  TH_S3_PUBLIC_ENDPOINT, when set, is the endpoint the
 * client can reach (default: TH_S3_ENDPOINT). */
#include <curl/curl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "media.h"
#include "storage.h"

#define S3_PRESIGN_TTL 300

static struct {
	const char *endpoint, *public_endpoint, *bucket, *region, *access, *secret;
	int path_style;
	char sigv4[128], userpwd[512];
} s3;

static int s3_init(void)
{
	s3.endpoint = cfg_str("TH_S3_ENDPOINT", NULL);
	s3.public_endpoint = cfg_str("TH_S3_PUBLIC_ENDPOINT", s3.endpoint);
	s3.bucket = cfg_str("TH_S3_BUCKET", NULL);
	s3.region = cfg_str("TH_S3_REGION", "us-east-1");
	s3.access = cfg_str("TH_S3_ACCESS_KEY", NULL);
	s3.secret = cfg_str("TH_S3_SECRET_KEY", NULL);
	s3.path_style = cfg_bool("TH_S3_PATH_STYLE", true);
	if (!s3.endpoint || !s3.bucket || !s3.access || !s3.secret ||
	    (strncmp(s3.endpoint, "http://", 7) != 0 && strncmp(s3.endpoint, "https://", 8) != 0)) {
		fprintf(stderr,
			"media: TH_MEDIA_STORAGE=s3 needs TH_S3_ENDPOINT (http[s]://host[:port]), "
			"TH_S3_BUCKET, TH_S3_ACCESS_KEY and TH_S3_SECRET_KEY\n");
		return -1;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "media: libcurl failed to initialize\n");
		return -1;
	}
	snprintf(s3.sigv4, sizeof(s3.sigv4), "aws:amz:%s:s3", s3.region);
	snprintf(s3.userpwd, sizeof(s3.userpwd), "%s:%s", s3.access, s3.secret);
	return 0;
}

static void s3_fini(void)
{
	curl_global_cleanup();
}

/* The object's URL on endpoint, and its canonical path, for key. */
static void object_url(const char *endpoint, const char *key, char *url, size_t size, char *path,
		       size_t psize)
{
	const char *host = strstr(endpoint, "://") + 3;
	size_t scheme_len = (size_t)(host - endpoint);

	if (s3.path_style) {
		snprintf(url, size, "%s/%s/%s", endpoint, s3.bucket, key);
		snprintf(path, psize, "/%s/%s", s3.bucket, key);
	} else {
		snprintf(url, size, "%.*s%s.%s/%s", (int)scheme_len, endpoint, s3.bucket, host,
			 key);
		snprintf(path, psize, "/%s", key);
	}
}

/* Where a response body goes: a file, a bounded memory buffer (a listing),
 * or nowhere. */
struct s3_sink {
	FILE *file;
	char *buf;
	size_t len, cap;
	int over; /* the body outgrew cap: the request fails */
};

static size_t sink_write(char *p, size_t sz, size_t n, void *ctx)
{
	struct s3_sink *k = ctx;
	size_t total = sz * n;

	if (k->file)
		return fwrite(p, 1, total, k->file) == total ? total : 0;
	if (!k->buf)
		return total;
	if (total > k->cap - 1 - k->len) {
		k->over = 1;
		return 0; /* libcurl fails the transfer */
	}
	memcpy(k->buf + k->len, p, total);
	k->len += total;
	k->buf[k->len] = '\0';
	return total;
}

/* Runs one request on url (path: for the log): method, an upload file, a
 * body sink, a range.  Returns the HTTP status, or -1 when the request
 * failed. */
static long s3_perform(const char *method, const char *url, const char *path, FILE *upload,
		       long long upload_size, struct s3_sink *sink, const char *range,
		       const char *mime, long long *length)
{
	char ct[160];
	CURL *c = curl_easy_init();
	struct curl_slist *hdrs = NULL;
	struct s3_sink none = {0};
	CURLcode rc;
	long status = -1;
	curl_off_t cl = -1;

	if (!c)
		return -1;
	if (!sink)
		sink = &none;
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_AWS_SIGV4, s3.sigv4);
	curl_easy_setopt(c, CURLOPT_USERPWD, s3.userpwd);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 300L);
	/* S3 wants the payload's hash signed; libcurl 7.88 does not add it, and
	 * hashing 100 MiB twice buys nothing over TLS or loopback: declared
	 * unsigned (libcurl signs the header itself) */
	hdrs = curl_slist_append(hdrs, "x-amz-content-sha256: UNSIGNED-PAYLOAD");
	if (strcmp(method, "PUT") == 0) {
		curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(c, CURLOPT_READDATA, upload);
		curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)upload_size);
		snprintf(ct, sizeof(ct), "Content-Type: %s",
			 mime ? mime : "application/octet-stream");
		hdrs = curl_slist_append(hdrs, ct);
		/* no 100-continue round trip on loopback */
		hdrs = curl_slist_append(hdrs, "Expect:");
	} else if (strcmp(method, "HEAD") == 0) {
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	} else if (strcmp(method, "DELETE") == 0) {
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "DELETE");
	}
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, sink);
	if (range)
		curl_easy_setopt(c, CURLOPT_RANGE, range);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	rc = curl_easy_perform(c);
	if (rc != CURLE_OK) {
		log_error("s3: %s %s: %s", method, path, curl_easy_strerror(rc));
	} else {
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
		curl_easy_getinfo(c, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
		if (length)
			*length = (long long)cl;
		if (status >= 300 && status != 404)
			log_error("s3: %s %s: HTTP %ld", method, path, status);
	}
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(c);
	return status;
}

/* One request on the object key. */
static long s3_request(const char *method, const char *key, FILE *upload, long long upload_size,
		       FILE *download, const char *range, const char *mime, long long *length)
{
	char url[1024], path[512];
	struct s3_sink sink = {.file = download};

	object_url(s3.endpoint, key, url, sizeof(url), path, sizeof(path));
	return s3_perform(method, url, path, upload, upload_size, &sink, range, mime, length);
}

static enum th_err status_err(long status)
{
	if (status >= 200 && status < 300)
		return TH_OK;
	return status == 404 ? TH_ENOTFOUND : TH_EUNAVAILABLE;
}

static enum th_err s3_put(const char *key, const char *path, const char *mime)
{
	FILE *f = fopen(path, "rb");
	struct stat st;
	long status;

	if (!f || fstat(fileno(f), &st) < 0) {
		if (f)
			fclose(f);
		return TH_EINTERNAL;
	}
	status = s3_request("PUT", key, f, (long long)st.st_size, NULL, NULL, mime, NULL);
	fclose(f);
	if (status_err(status) != TH_OK)
		return TH_EUNAVAILABLE;
	unlink(path);
	return TH_OK;
}

static enum th_err s3_get(const char *key, long long off, long long len, const char *path)
{
	FILE *f = fopen(path, "wb");
	char range[64];
	long status;

	if (!f)
		return TH_EINTERNAL;
	if (len >= 0)
		snprintf(range, sizeof(range), "%lld-%lld", off, off + len - 1);
	else
		snprintf(range, sizeof(range), "%lld-", off);
	status = s3_request("GET", key, NULL, 0, f, off > 0 || len >= 0 ? range : NULL, NULL, NULL);
	if (fclose(f) != 0 && status_err(status) == TH_OK)
		return TH_EUNAVAILABLE;
	return status_err(status);
}

static enum th_err s3_del(const char *key)
{
	long status = s3_request("DELETE", key, NULL, 0, NULL, NULL, NULL, NULL);

	/* S3 answers 204 for a missing key too */
	return status_err(status);
}

static enum th_err s3_head(const char *key, long long *size)
{
	return status_err(s3_request("HEAD", key, NULL, 0, NULL, NULL, NULL, size));
}

/* ---- presigned GET (SigV4 query signing) ---- */

static void hex(const unsigned char *b, size_t n, char *out)
{
	static const char d[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = d[b[i] >> 4];
		out[2 * i + 1] = d[b[i] & 15];
	}
	out[2 * n] = '\0';
}

static void hmac(const unsigned char *key, size_t klen, const char *msg, unsigned char out[32])
{
	crypto_auth_hmacsha256_state st;

	crypto_auth_hmacsha256_init(&st, key, klen);
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)msg, strlen(msg));
	crypto_auth_hmacsha256_final(&st, out);
}

/* RFC 3986 unreserved kept, everything else %XX (SigV4's UriEncode). */
static void uri_encode(const char *s, char *out, size_t size, int keep_slash)
{
	size_t n = 0;

	for (; *s && n + 4 < size; s++) {
		unsigned char ch = (unsigned char)*s;

		if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
		    (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '.' || ch == '~' ||
		    (keep_slash && ch == '/'))
			out[n++] = (char)ch;
		else
			n += (size_t)snprintf(out + n, size - n, "%%%02X", ch);
	}
	out[n] = '\0';
}

static int s3_deliver(struct http_req *req, const char *key)
{
	char url[1024], path[512], epath[1024], cred[256], ecred[512], query[1024];
	char canon[3072], sts[512], hash_hex[65], sig_hex[65], date[9], stamp[17], kbuf[300];
	unsigned char h[32], k[32];
	const char *host;
	time_t now = time(NULL);
	struct tm tm;
	char *loc;

	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%Y%m%d", &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
	object_url(s3.public_endpoint, key, url, sizeof(url), path, sizeof(path));
	host = strstr(url, "://") + 3;
	uri_encode(path, epath, sizeof(epath), 1);
	snprintf(cred, sizeof(cred), "%s/%s/%s/s3/aws4_request", s3.access, date, s3.region);
	uri_encode(cred, ecred, sizeof(ecred), 0);
	snprintf(query, sizeof(query),
		 "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=%s&X-Amz-Date=%s"
		 "&X-Amz-Expires=%d&X-Amz-SignedHeaders=host",
		 ecred, stamp, S3_PRESIGN_TTL);
	snprintf(canon, sizeof(canon), "GET\n%s\n%s\nhost:%.*s\n\nhost\nUNSIGNED-PAYLOAD", epath,
		 query, (int)strcspn(host, "/"), host);
	crypto_hash_sha256(h, (const unsigned char *)canon, strlen(canon));
	hex(h, 32, hash_hex);
	snprintf(sts, sizeof(sts), "AWS4-HMAC-SHA256\n%s\n%s/%s/s3/aws4_request\n%s", stamp, date,
		 s3.region, hash_hex);
	snprintf(kbuf, sizeof(kbuf), "AWS4%s", s3.secret);
	hmac((const unsigned char *)kbuf, strlen(kbuf), date, k);
	hmac(k, 32, s3.region, k);
	hmac(k, 32, "s3", k);
	hmac(k, 32, "aws4_request", k);
	hmac(k, 32, sts, h);
	hex(h, 32, sig_hex);
	sodium_memzero(kbuf, sizeof(kbuf));
	loc = arena_printf(req->arena, "%.*s%s?%s&X-Amz-Signature=%s",
			   (int)(host - url + (long)strcspn(host, "/")), url, epath, query,
			   sig_hex);
	if (!loc) {
		http_reply_error(req, TH_EINTERNAL, "out of memory", NULL);
		return -1;
	}
	http_reply_empty(req, 302);
	http_add_header(req, "Location", loc);
	return 0;
}

/* ---- listing (ListObjectsV2), for th-media-gc ---- */

#define S3_LIST_PAGE 1000                  /* keys per page, S3's own maximum */
#define S3_LIST_BODY_MAX (4 * 1024 * 1024) /* one page's XML: ~350 bytes a key */

/* The text of the first <tag>...</tag> in [p, end), into out (cut at
 * size); a pointer past it, or NULL when absent. */
static const char *xml_text(const char *p, const char *end, const char *tag, char *out, size_t size)
{
	char open[48], close[48];
	const char *a, *b;
	size_t n;

	snprintf(open, sizeof(open), "<%s>", tag);
	snprintf(close, sizeof(close), "</%s>", tag);
	a = memmem(p, (size_t)(end - p), open, strlen(open));
	if (!a)
		return NULL;
	a += strlen(open);
	b = memmem(a, (size_t)(end - a), close, strlen(close));
	if (!b)
		return NULL;
	n = (size_t)(b - a) < size - 1 ? (size_t)(b - a) : size - 1;
	memcpy(out, a, n);
	out[n] = '\0';
	return b + strlen(close);
}

/* "2026-12-02T10:30:00.000Z" -> seconds since the epoch; -1 when malformed. */
static time_t iso_time(const char *s)
{
	struct tm tm;
	const char *rest;

	memset(&tm, 0, sizeof(tm));
	rest = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!rest)
		return (time_t)-1;
	return timegm(&tm);
}

/* 1 when k is a key we write (storage.h): [0-9a-z.], 4..80 bytes.  Other
 * objects of the bucket are someone else's and are never reported. */
static int s3_key_ok(const char *k)
{
	size_t n = strlen(k);

	if (n < 4 || n > 80)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((k[i] >= '0' && k[i] <= '9') || (k[i] >= 'a' && k[i] <= 'z') || k[i] == '.'))
			return 0;
	return 1;
}

/* XML text in place: the five predefined entities back to their characters
 * (a listing escapes keys; start-after needs the key itself). */
static void xml_unescape(char *s)
{
	static const struct {
		const char *ent;
		char c;
	} ents[] = {
		{"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''},
	};
	char *w = s;

	for (const char *r = s; *r;) {
		size_t i, n = sizeof(ents) / sizeof(ents[0]);

		for (i = 0; i < n && strncmp(r, ents[i].ent, strlen(ents[i].ent)) != 0; i++)
			;
		if (i < n) {
			*w++ = ents[i].c;
			r += strlen(ents[i].ent);
		} else {
			*w++ = *r++;
		}
	}
	*w = '\0';
}

/* Pages with start-after=<last key> rather than the continuation token
 * (parameters already in SigV4's sorted order).  The last key may be one that
 * is not ours (any name another writer of the bucket chose), so it is
 * unescaped from the XML and percent-encoded into the query. */
static enum th_err s3_list(storage_list_fn fn, void *ctx, long long max)
{
	/* S3 keys are at most 1024 bytes, up to six times that escaped in XML
	 * ("&quot;"); start-after percent-encodes to at most three times */
	char base[1024], path[512], url[4608], after[1025] = "", key[1024 * 6 + 1], val[64];
	struct s3_sink sink = {0};
	enum th_err e = TH_OK;
	long long left = max;
	/* a bound on pages: every full page moves start-after forward */
	long long pages = max / S3_LIST_PAGE + 2;
	int stop = 0;

	sink.cap = S3_LIST_BODY_MAX;
	sink.buf = malloc(sink.cap);
	if (!sink.buf)
		return TH_EUNAVAILABLE;
	/* the bucket's URL: the object URL of an empty key */
	object_url(s3.endpoint, "", base, sizeof(base), path, sizeof(path));
	if (s3.path_style && base[0])
		base[strlen(base) - 1] = '\0'; /* <endpoint>/<bucket>, no trailing slash */
	while (!stop && left > 0 && pages-- > 0) {
		const char *p, *end, *next;
		char truncated[8] = "";
		long status;
		int nkeys = 0;

		char *esc = after[0] ? curl_easy_escape(NULL, after, 0) : NULL;

		if (after[0] && !esc) {
			e = TH_EUNAVAILABLE;
			break;
		}
		snprintf(url, sizeof(url), "%s?list-type=2&max-keys=%d%s%s", base, S3_LIST_PAGE,
			 esc ? "&start-after=" : "", esc ? esc : "");
		curl_free(esc);
		sink.len = 0;
		sink.over = 0;
		sink.buf[0] = '\0';
		status = s3_perform("GET", url, path, NULL, 0, &sink, NULL, NULL, NULL);
		if (status != 200 || sink.over) {
			if (sink.over)
				log_error("s3: list %s: a page over %d bytes", path,
					  S3_LIST_BODY_MAX);
			e = TH_EUNAVAILABLE;
			break;
		}
		p = sink.buf;
		end = sink.buf + sink.len;
		while (!stop && (next = memmem(p, (size_t)(end - p), "<Contents>", 10)) != NULL) {
			const char *cend = memmem(next, (size_t)(end - next), "</Contents>", 11);
			struct storage_obj o;
			int cut;

			if (!cend)
				break;
			p = cend + 11;
			if (!xml_text(next, cend, "Key", key, sizeof(key)))
				continue;
			/* filling the buffer means xml_text cut it: no key of S3's */
			cut = strlen(key) == sizeof(key) - 1;
			xml_unescape(key);
			if (cut || strlen(key) >= sizeof(after)) {
				/* longer than S3 allows: a broken listing, not a key */
				log_error("s3: list %s: a key of %zu bytes", path, strlen(key));
				e = TH_EUNAVAILABLE;
				stop = 1;
				break;
			}
			nkeys++;
			memcpy(after, key, strlen(key) + 1);
			if (!s3_key_ok(key))
				continue;
			if (left <= 0) {
				stop = 1;
				break;
			}
			left--;
			o.key = key;
			o.size = xml_text(next, cend, "Size", val, sizeof(val))
					 ? strtoll(val, NULL, 10)
					 : -1;
			o.mtime = xml_text(next, cend, "LastModified", val, sizeof(val))
					  ? iso_time(val)
					  : (time_t)-1;
			if (o.mtime == (time_t)-1) {
				log_error("s3: list %s: no LastModified for %s", path, key);
				continue; /* never treated as old */
			}
			if (fn(ctx, &o) != 0)
				stop = 1;
		}
		xml_text(sink.buf, end, "IsTruncated", truncated, sizeof(truncated));
		if (strcmp(truncated, "true") != 0 || nkeys == 0)
			break;
	}
	free(sink.buf);
	return e;
}

const struct storage_ops storage_s3 = {
	.name = "s3",
	.init = s3_init,
	.fini = s3_fini,
	.put = s3_put,
	.get = s3_get,
	.del = s3_del,
	.head = s3_head,
	.deliver = s3_deliver,
	.list = s3_list,
};
