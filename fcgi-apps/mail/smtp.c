/* smtp: one message over SMTP with libcurl.
 *
 * TH_SMTP_URL       smtp://host:port (STARTTLS per TH_SMTP_TLS) or
 *                   smtps://host:port (TLS from the start); required
 * TH_SMTP_TLS       none | try | all (default all: STARTTLS required,
 *                   certificate checked; the loopback sink of the
 *                   development stack sets none)
 * TH_SMTP_USERNAME, TH_SMTP_PASSWORD_FILE (or TH_SMTP_PASSWORD): AUTH, when
 *                   a username is set
 * TH_SMTP_CA_FILE   CA bundle that signs the server's certificate (default:
 *                   the system's)
 * TH_SMTP_TIMEOUT_S whole exchange of one message (default 30)
 *
 * One curl handle for the process's life: libcurl keeps its connection
 * open between messages and sends the next one on it (MAIL FROM again), so
 * a batch costs one connect, EHLO and TLS handshake, not one a mail; a
 * connection the server closed meanwhile is noticed and replaced by curl. */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "mailer.h"

static const char *smtp_url;
static long use_ssl, timeout_s;
static const char *username, *ca_file;
static char password[512];
static CURL *handle;

struct reader {
	const char *p;
	size_t left;
};

static size_t read_cb(char *out, size_t size, size_t nmemb, void *userp)
{
	struct reader *r = userp;
	size_t n = size * nmemb;

	if (n > r->left)
		n = r->left;
	memcpy(out, r->p, n);
	r->p += n;
	r->left -= n;
	return n;
}

static int read_password(void)
{
	const char *path = cfg_str("TH_SMTP_PASSWORD_FILE", NULL);
	FILE *f;
	size_t n;

	if (!path) {
		snprintf(password, sizeof(password), "%s", cfg_str("TH_SMTP_PASSWORD", ""));
		return 0;
	}
	f = fopen(path, "r");
	if (!f) {
		fprintf(stderr, "mailer: cannot read TH_SMTP_PASSWORD_FILE %s\n", path);
		return -1;
	}
	n = fread(password, 1, sizeof(password) - 1, f);
	fclose(f);
	while (n && (password[n - 1] == '\n' || password[n - 1] == '\r'))
		n--;
	password[n] = '\0';
	return 0;
}

int smtp_init(void)
{
	const char *tls = cfg_str("TH_SMTP_TLS", "all");

	smtp_url = cfg_str("TH_SMTP_URL", NULL);
	if (!smtp_url ||
	    (strncmp(smtp_url, "smtp://", 7) != 0 && strncmp(smtp_url, "smtps://", 8) != 0)) {
		fprintf(stderr,
			"mailer: TH_SMTP_URL must be smtp://host:port or smtps://host:port\n");
		return -1;
	}
	if (strcmp(tls, "none") == 0)
		use_ssl = CURLUSESSL_NONE;
	else if (strcmp(tls, "try") == 0)
		use_ssl = CURLUSESSL_TRY;
	else if (strcmp(tls, "all") == 0)
		use_ssl = CURLUSESSL_ALL;
	else {
		fprintf(stderr, "mailer: TH_SMTP_TLS must be none, try or all\n");
		return -1;
	}
	timeout_s = (long)cfg_int("TH_SMTP_TIMEOUT_S", 30, 1, 600);
	username = cfg_str("TH_SMTP_USERNAME", NULL);
	ca_file = cfg_str("TH_SMTP_CA_FILE", NULL);
	if (read_password() < 0)
		return -1;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "mailer: curl_global_init failed\n");
		return -1;
	}
	return 0;
}

void smtp_fini(void)
{
	if (handle)
		curl_easy_cleanup(handle);
	handle = NULL;
	curl_global_cleanup();
}

long smtp_timeout_s(void)
{
	return timeout_s;
}

int smtp_send(const char *from, const char *to, const char *msg, size_t len, char *err,
	      size_t errsize)
{
	struct reader rd = {msg, len};
	struct curl_slist *rcpt = NULL;
	char curl_err[CURL_ERROR_SIZE] = "", addr[300];
	long code = 0;
	CURLcode rc;
	CURL *c;
	int ret = -1;

	/* reset: every option set again below, the connection kept */
	if (handle)
		curl_easy_reset(handle);
	else
		handle = curl_easy_init();
	c = handle;
	snprintf(addr, sizeof(addr), "<%s>", to);
	rcpt = curl_slist_append(NULL, addr);
	if (!c || !rcpt) {
		snprintf(err, errsize, "out of memory");
		goto out;
	}
	snprintf(addr, sizeof(addr), "<%s>", from);
	curl_easy_setopt(c, CURLOPT_URL, smtp_url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
	curl_easy_setopt(c, CURLOPT_USE_SSL, use_ssl);
	if (ca_file)
		curl_easy_setopt(c, CURLOPT_CAINFO, ca_file);
	if (username) {
		curl_easy_setopt(c, CURLOPT_USERNAME, username);
		curl_easy_setopt(c, CURLOPT_PASSWORD, password);
	}
	curl_easy_setopt(c, CURLOPT_MAIL_FROM, addr);
	curl_easy_setopt(c, CURLOPT_MAIL_RCPT, rcpt);
	curl_easy_setopt(c, CURLOPT_READFUNCTION, read_cb);
	curl_easy_setopt(c, CURLOPT_READDATA, &rd);
	curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)len);
	curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, curl_err);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, timeout_s < 10 ? timeout_s : 10L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, timeout_s);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	rc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	if (rc == CURLE_OK) {
		ret = 0;
		goto out;
	}
	/* curl's text names the server's answer; no CR/LF reaches our log */
	snprintf(err, errsize, "%s (%ld): %s", curl_easy_strerror(rc), code,
		 curl_err[0] ? curl_err : "-");
	for (char *p = err; *p; p++)
		if (*p == '\r' || *p == '\n')
			*p = ' ';
	ret = code >= 500 && code < 600 ? 1 : -1;
out:
	curl_slist_free_all(rcpt);
	return ret;
}
