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
		fprintf(stderr, "media: TH_MEDIA_STORAGE=s3 needs TH_S3_ENDPOINT (http[s]://host[:port]), "
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
static void object_url(const char *endpoint, const char *key, char *url, size_t size,
		       char *path, size_t psize)
{
	const char *host = strstr(endpoint, "://") + 3;
	size_t scheme_len = (size_t)(host - endpoint);

	if (s3.path_style) {
		snprintf(url, size, "%s/%s/%s", endpoint, s3.bucket, key);
		snprintf(path, psize, "/%s/%s", s3.bucket, key);
	} else {
		snprintf(url, size, "%.*s%s.%s/%s", (int)scheme_len, endpoint, s3.bucket, host, key);
		snprintf(path, psize, "/%s", key);
	}
}

static size_t discard(char *p, size_t sz, size_t n, void *ctx)
{
	(void)p;
	(void)ctx;
	return sz * n;
}

/* Runs one request on key: method, an upload file or a download file, a
 * range.  Returns the HTTP status, or -1 when the request failed. */
static long s3_request(const char *method, const char *key, FILE *upload, long long upload_size,
		       FILE *download, const char *range, const char *mime, long long *length)
{
	char url[1024], path[512], ct[160];
	CURL *c = curl_easy_init();
	struct curl_slist *hdrs = NULL;
	CURLcode rc;
	long status = -1;
	curl_off_t cl = -1;

	if (!c)
		return -1;
	object_url(s3.endpoint, key, url, sizeof(url), path, sizeof(path));
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
		snprintf(ct, sizeof(ct), "Content-Type: %s", mime ? mime : "application/octet-stream");
		hdrs = curl_slist_append(hdrs, ct);
		/* no 100-continue round trip on loopback */
		hdrs = curl_slist_append(hdrs, "Expect:");
	} else if (strcmp(method, "HEAD") == 0) {
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	} else if (strcmp(method, "DELETE") == 0) {
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "DELETE");
	}
	if (download) {
		curl_easy_setopt(c, CURLOPT_WRITEDATA, download); /* default writer: fwrite */
	} else {
		curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
	}
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

		if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
		    ch == '-' || ch == '_' || ch == '.' || ch == '~' || (keep_slash && ch == '/'))
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
			   (int)(host - url + (long)strcspn(host, "/")), url, epath, query, sig_hex);
	if (!loc) {
		http_reply_error(req, TH_EINTERNAL, "out of memory", NULL);
		return -1;
	}
	http_reply_empty(req, 302);
	http_add_header(req, "Location", loc);
	return 0;
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
};
