/* http: one Web Push request (RFC 8030 section 5) over libcurl.
 *
 * One curl handle for the process's life, so pushes to one service reuse
 * its connection.  Bounded: connect 5 s, the whole request
 * TH_PUSH_TIMEOUT_S; no redirects; http and https only; the answer's body
 * is read and thrown away, at most 64 KiB. */
#include <curl/curl.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "pusher.h"

#define ANSWER_MAX (64 * 1024)

static CURL *handle;
static long timeout_s;

int push_http_init(void)
{
	timeout_s = (long)cfg_int("TH_PUSH_TIMEOUT_S", 10, 1, 120);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return -1;
	handle = curl_easy_init();
	return handle ? 0 : -1;
}

void push_http_fini(void)
{
	if (handle)
		curl_easy_cleanup(handle);
	handle = NULL;
	curl_global_cleanup();
}

long push_http_timeout_s(void)
{
	return timeout_s;
}

/* the answer's body is not used; a longer one ends the transfer */
static size_t sink(char *p, size_t size, size_t nmemb, void *userp)
{
	size_t *seen = userp, n = size * nmemb;

	(void)p;
	*seen += n;
	return *seen > ANSWER_MAX ? 0 : n;
}

int push_post(const char *endpoint, const char *authorization, long ttl_s, const char *urgency,
	      const unsigned char *body, size_t len, char *err, size_t errsize)
{
	char h_auth[2048], h_ttl[32], h_urg[32];
	struct curl_slist *hdrs = NULL, *l;
	size_t seen = 0;
	long status = 0;
	CURLcode rc;

	snprintf(h_auth, sizeof(h_auth), "Authorization: %s", authorization);
	snprintf(h_ttl, sizeof(h_ttl), "TTL: %ld", ttl_s);
	snprintf(h_urg, sizeof(h_urg), "Urgency: %s", urgency);
	const char *lines[] = {h_auth,
			       h_ttl,
			       h_urg,
			       "Content-Encoding: aes128gcm",
			       "Content-Type: application/octet-stream",
			       "Expect:"};
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		l = curl_slist_append(hdrs, lines[i]);
		if (!l) {
			snprintf(err, errsize, "out of memory");
			curl_slist_free_all(hdrs);
			return -1;
		}
		hdrs = l;
	}
	curl_easy_reset(handle);
	curl_easy_setopt(handle, CURLOPT_URL, endpoint);
	curl_easy_setopt(handle, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(handle, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(handle, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(handle, CURLOPT_CONNECTTIMEOUT, 5L);
	curl_easy_setopt(handle, CURLOPT_TIMEOUT, timeout_s);
	curl_easy_setopt(handle, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(handle, CURLOPT_POST, 1L);
	curl_easy_setopt(handle, CURLOPT_POSTFIELDS, (const char *)body);
	curl_easy_setopt(handle, CURLOPT_POSTFIELDSIZE, (long)len);
	curl_easy_setopt(handle, CURLOPT_WRITEFUNCTION, sink);
	curl_easy_setopt(handle, CURLOPT_WRITEDATA, &seen);
	curl_easy_setopt(handle, CURLOPT_USERAGENT, "townhall-pusher");
	rc = curl_easy_perform(handle);
	if (rc == CURLE_OK || rc == CURLE_WRITE_ERROR)
		curl_easy_getinfo(handle, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(hdrs);
	if (status == 0) {
		snprintf(err, errsize, "%s", curl_easy_strerror(rc));
		return -1;
	}
	snprintf(err, errsize, "HTTP %ld", status);
	return (int)status;
}
