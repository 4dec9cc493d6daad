/* oidcprov: the configured OpenID Connect providers, their discovery
 * documents and key sets, and the token request, over libcurl.
 *
 * Each worker keeps its own copy of what it fetched (a prefork worker serves
 * one request at a time): the discovery document for TH_OIDC_DISCOVERY_TTL
 * seconds, the JWKS as long, fetched again sooner when a token names a key
 * it does not hold, at most once every TH_OIDC_JWKS_MIN_REFRESH seconds (a
 * flood of tokens with made-up kids costs the provider one request a worker
 * per interval).  Every request is bounded: TH_OIDC_HTTP_TIMEOUT_MS in all,
 * TH_OIDC_RESPONSE_MAX bytes, no redirects followed, https only unless
 * TH_OIDC_ALLOW_HTTP (development and tests). */
#include <curl/curl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "jhcore.h"
#include "log.h"
#include "mono.h"
#include "oidc.h"

static struct oidc_provider providers[OIDC_MAX_PROVIDERS];
static int nproviders;
static struct {
	long discovery_ttl_s, jwks_min_refresh_s, timeout_ms, leeway_s;
	size_t response_max;
	int allow_http;
} opt;
static CURL *handle;

int oidcp_count(void)
{
	return nproviders;
}

const struct oidc_provider *oidcp_at(int i)
{
	return i >= 0 && i < nproviders ? &providers[i] : NULL;
}

struct oidc_provider *oidcp_find(const char *name)
{
	for (int i = 0; i < nproviders; i++)
		if (strcmp(providers[i].name, name) == 0)
			return &providers[i];
	return NULL;
}

int oidcp_redirect_allowed(const struct oidc_provider *p, const char *uri)
{
	for (int i = 0; i < p->nredirects; i++)
		if (strcmp(p->redirects[i], uri) == 0)
			return 1;
	return 0;
}

static int name_ok(const char *s, size_t n)
{
	if (n == 0 || n > OIDC_NAME_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return 0;
	return 1;
}

/* An absolute http(s) URL without spaces or control bytes that fits size. */
static int url_ok(const char *s, size_t size)
{
	size_t n = strlen(s);

	if (n == 0 || n >= size ||
	    (strncmp(s, "https://", 8) != 0 && !(opt.allow_http && strncmp(s, "http://", 7) == 0)))
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= ' ' || s[i] == 0x7f)
			return 0;
	return 1;
}

/* TH_OIDC_<NAME>_<what> */
static const char *pcfg(const char *name, const char *what)
{
	char var[96];
	size_t i, n;

	n = (size_t)snprintf(var, sizeof(var), "TH_OIDC_%s_%s", name, what);
	for (i = 8; i < n; i++)
		if (var[i] >= 'a' && var[i] <= 'z')
			var[i] = (char)(var[i] - 'a' + 'A');
	return cfg_str(var, NULL);
}

static int secret_from_file(struct oidc_provider *p, const char *path)
{
	FILE *f = fopen(path, "r");
	size_t n;

	if (!f)
		return -1;
	n = fread(p->client_secret, 1, sizeof(p->client_secret) - 1, f);
	fclose(f);
	while (n > 0 && (p->client_secret[n - 1] == '\n' || p->client_secret[n - 1] == '\r'))
		n--;
	p->client_secret[n] = '\0';
	return n > 0 ? 0 : -1;
}

/* One provider's settings; -1 with a message on stderr. */
static int provider_load(struct oidc_provider *p, const char *name)
{
	const char *issuer = pcfg(name, "ISSUER"), *client = pcfg(name, "CLIENT_ID"),
		   *secret = pcfg(name, "CLIENT_SECRET"), *sfile = pcfg(name, "CLIENT_SECRET_FILE"),
		   *label = pcfg(name, "LABEL"), *uris = pcfg(name, "REDIRECT_URIS");
	char list[OIDC_REDIRECTS_MAX * OIDC_URL_MAX], *save = NULL, *u;

	snprintf(p->name, sizeof(p->name), "%s", name);
	if (!issuer || !url_ok(issuer, sizeof(p->issuer)) || !client ||
	    strlen(client) >= sizeof(p->client_id) || !uris || strlen(uris) >= sizeof(list)) {
		fprintf(stderr,
			"oidc: provider %s needs TH_OIDC_%s_ISSUER (an https URL), _CLIENT_ID and "
			"_REDIRECT_URIS\n",
			name, name);
		return -1;
	}
	snprintf(p->issuer, sizeof(p->issuer), "%s", issuer);
	snprintf(p->client_id, sizeof(p->client_id), "%s", client);
	snprintf(p->label, sizeof(p->label), "%s", label ? label : name);
	if (sfile && secret_from_file(p, sfile) < 0) {
		fprintf(stderr, "oidc: cannot read the client secret of %s from %s\n", name, sfile);
		return -1;
	}
	if (!sfile && secret)
		snprintf(p->client_secret, sizeof(p->client_secret), "%s", secret);
	snprintf(list, sizeof(list), "%s", uris);
	for (u = strtok_r(list, ", ", &save); u; u = strtok_r(NULL, ", ", &save)) {
		if (p->nredirects == OIDC_REDIRECTS_MAX || !url_ok(u, OIDC_URL_MAX)) {
			fprintf(stderr,
				"oidc: %s: at most %d redirect URIs, each an absolute URL\n", name,
				OIDC_REDIRECTS_MAX);
			return -1;
		}
		snprintf(p->redirects[p->nredirects++], OIDC_URL_MAX, "%s", u);
	}
	return p->nredirects > 0 ? 0 : -1;
}

int oidcp_init(void)
{
	const char *names = cfg_str("TH_OIDC_PROVIDERS", "");
	const char *s = names;

	opt.discovery_ttl_s = (long)cfg_int("TH_OIDC_DISCOVERY_TTL", 3600, 1, 86400);
	opt.jwks_min_refresh_s = (long)cfg_int("TH_OIDC_JWKS_MIN_REFRESH", 10, 0, 3600);
	opt.timeout_ms = (long)cfg_int("TH_OIDC_HTTP_TIMEOUT_MS", 5000, 100, 60000);
	opt.leeway_s = (long)cfg_int("TH_OIDC_LEEWAY", 60, 0, 600);
	opt.response_max = (size_t)cfg_int("TH_OIDC_RESPONSE_MAX", 65536, 1024, 1048576);
	opt.allow_http = cfg_bool("TH_OIDC_ALLOW_HTTP", false);
	while (*s) {
		size_t n = strcspn(s, ", ");
		char name[OIDC_NAME_MAX + 1];

		if (n > 0) {
			if (!name_ok(s, n) || nproviders == OIDC_MAX_PROVIDERS) {
				fprintf(stderr,
					"oidc: TH_OIDC_PROVIDERS: at most %d names of a-z, 0-9 "
					"and _ (1 to %d)\n",
					OIDC_MAX_PROVIDERS, OIDC_NAME_MAX);
				return -1;
			}
			memcpy(name, s, n);
			name[n] = '\0';
			if (oidcp_find(name) || provider_load(&providers[nproviders], name) < 0)
				return -1;
			nproviders++;
		}
		s += n;
		s += strspn(s, ", ");
	}
	if (nproviders == 0)
		return 0;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "oidc: curl_global_init failed\n");
		return -1;
	}
	return 0;
}

void oidcp_fini(void)
{
	for (int i = 0; i < nproviders; i++)
		idt_keys_clear(&providers[i].keys);
	if (handle)
		curl_easy_cleanup(handle);
	handle = NULL;
	if (nproviders)
		curl_global_cleanup();
	nproviders = 0;
}

struct body {
	char *buf;
	size_t len, max;
};

static size_t write_cb(char *data, size_t size, size_t n, void *ud)
{
	struct body *b = ud;
	size_t add = size * n;
	char *nb;

	if (add > b->max - b->len)
		return 0; /* over the cap: curl stops with CURLE_WRITE_ERROR */
	nb = realloc(b->buf, b->len + add + 1);
	if (!nb)
		return 0;
	b->buf = nb;
	memcpy(b->buf + b->len, data, add);
	b->len += add;
	b->buf[b->len] = '\0';
	return add;
}

/* GET url (form NULL) or POST the form; basic auth with user/pass when user
 * is set.  The parsed JSON object of a 2xx (or, with status, of any answer)
 * into *out (a new reference).  TH_OK; TH_EUNAVAILABLE when the provider
 * does not answer in time, answers too much or not JSON. */
static enum th_err http_json(const char *url, const char *form, const char *user, const char *pass,
			     long *status, struct json_object **out)
{
	struct body b = {.max = opt.response_max};
	struct curl_slist *hdrs = NULL;
	char err[CURL_ERROR_SIZE] = "";
	long code = 0;
	CURLcode rc;
	enum th_err e = TH_EUNAVAILABLE;

	*out = NULL;
	if (!handle)
		handle = curl_easy_init();
	if (!handle)
		return TH_EUNAVAILABLE;
	hdrs = curl_slist_append(NULL, "Accept: application/json");
	curl_easy_setopt(handle, CURLOPT_URL, url);
	curl_easy_setopt(handle, CURLOPT_PROTOCOLS_STR, opt.allow_http ? "http,https" : "https");
	curl_easy_setopt(handle, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(handle, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(handle, CURLOPT_TIMEOUT_MS, opt.timeout_ms);
	curl_easy_setopt(handle, CURLOPT_CONNECTTIMEOUT_MS, opt.timeout_ms);
	curl_easy_setopt(handle, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)opt.response_max);
	curl_easy_setopt(handle, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(handle, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(handle, CURLOPT_ERRORBUFFER, err);
	curl_easy_setopt(handle, CURLOPT_HTTPHEADER, hdrs);
	if (form) {
		curl_easy_setopt(handle, CURLOPT_POSTFIELDS, form);
		if (user) {
			curl_easy_setopt(handle, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
			curl_easy_setopt(handle, CURLOPT_USERNAME, user);
			curl_easy_setopt(handle, CURLOPT_PASSWORD, pass);
		}
	}
	rc = curl_easy_perform(handle);
	curl_easy_getinfo(handle, CURLINFO_RESPONSE_CODE, &code);
	/* the handle points at err, hdrs, b and the form, which die with this
	 * call: forget them (the connection stays for the next request) */
	curl_easy_reset(handle);
	if (status)
		*status = code;
	if (rc != CURLE_OK) {
		log_warn("oidc: %s: %s", url, err[0] ? err : curl_easy_strerror(rc));
		goto out;
	}
	if (!status && (code < 200 || code > 299)) {
		log_warn("oidc: %s answered %ld", url, code);
		goto out;
	}
	*out = b.buf ? jh_parse(b.buf, b.len) : NULL;
	if (!*out || !json_object_is_type(*out, json_type_object)) {
		log_warn("oidc: %s answered no JSON object", url);
		json_object_put(*out);
		*out = NULL;
		goto out;
	}
	e = TH_OK;
out:
	curl_slist_free_all(hdrs);
	free(b.buf);
	return e;
}

/* A string member that is an acceptable URL into dst; -1 otherwise. */
static int endpoint(struct json_object *doc, const char *name, char *dst, size_t size)
{
	struct json_object *v;

	if (!json_object_object_get_ex(doc, name, &v) ||
	    !json_object_is_type(v, json_type_string) || !url_ok(json_object_get_string(v), size))
		return -1;
	snprintf(dst, size, "%s", json_object_get_string(v));
	return 0;
}

enum th_err oidcp_discover(struct oidc_provider *p)
{
	char url[OIDC_URL_MAX + 64];
	struct json_object *doc = NULL, *v;
	uint64_t now = mono_ms();
	enum th_err e;

	if (p->discovered_ms && now - p->discovered_ms < (uint64_t)opt.discovery_ttl_s * 1000)
		return TH_OK;
	/* a provider that just failed is not asked again at once: a worker
	 * waits out the timeout at most once per OIDC_RETRY_MS */
	if (p->failed_ms && now - p->failed_ms < OIDC_RETRY_MS)
		return TH_EUNAVAILABLE;
	snprintf(url, sizeof(url), "%s%s.well-known/openid-configuration", p->issuer,
		 p->issuer[strlen(p->issuer) - 1] == '/' ? "" : "/");
	e = http_json(url, NULL, NULL, NULL, NULL, &doc);
	if (e != TH_OK)
		goto out;
	/* OIDC Discovery 4.3: the document's issuer is the configured one */
	if (!json_object_object_get_ex(doc, "issuer", &v) ||
	    !json_object_is_type(v, json_type_string) ||
	    strcmp(json_object_get_string(v), p->issuer) != 0 ||
	    endpoint(doc, "authorization_endpoint", p->authorize_url, sizeof(p->authorize_url)) <
		    0 ||
	    endpoint(doc, "token_endpoint", p->token_url, sizeof(p->token_url)) < 0 ||
	    endpoint(doc, "jwks_uri", p->jwks_url, sizeof(p->jwks_url)) < 0) {
		log_warn("oidc: %s: the discovery document is not usable", p->name);
		e = TH_EUNAVAILABLE;
		goto out;
	}
	p->discovered_ms = now;
	p->failed_ms = 0;
	p->keys_ms = 0; /* the key set follows the document */
out:
	if (e != TH_OK)
		p->failed_ms = mono_ms();
	json_object_put(doc);
	return e;
}

/* Fetches the JWKS again; TH_OK, TH_EUNAVAILABLE. */
static enum th_err jwks_fetch(struct oidc_provider *p)
{
	struct json_object *doc = NULL;
	struct idt_keys fresh = {0};
	const char *s;
	enum th_err e;

	p->keys_tried_ms = mono_ms();
	e = http_json(p->jwks_url, NULL, NULL, NULL, NULL, &doc);
	if (e != TH_OK)
		return e;
	s = json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PLAIN);
	if (!s || idt_keys_parse(s, strlen(s), &fresh) < 0) {
		log_warn("oidc: %s: the JWKS is not usable", p->name);
		json_object_put(doc);
		return TH_EUNAVAILABLE;
	}
	json_object_put(doc);
	idt_keys_clear(&p->keys);
	p->keys = fresh;
	p->keys_ms = p->keys_tried_ms;
	return TH_OK;
}

enum th_err oidcp_verify(struct oidc_provider *p, const char *id_token, const char *nonce,
			 struct json_object **claims, enum idt_result *why)
{
	struct idt_expect x = {.issuer = p->issuer,
			       .client_id = p->client_id,
			       .nonce = nonce,
			       .now = (int64_t)time(NULL),
			       .leeway_s = opt.leeway_s};
	uint64_t now = mono_ms();
	enum th_err e;

	*claims = NULL;
	if (!p->keys_ms || now - p->keys_ms >= (uint64_t)opt.discovery_ttl_s * 1000) {
		e = jwks_fetch(p);
		if (e != TH_OK)
			return e;
	}
	*why = idt_verify(id_token, strlen(id_token), &p->keys, &x, claims);
	if (*why == IDT_UNKNOWN_KID &&
	    now - p->keys_tried_ms >= (uint64_t)opt.jwks_min_refresh_s * 1000) {
		/* a rotated key: one more look, rate-limited */
		e = jwks_fetch(p);
		if (e != TH_OK)
			return e;
		*why = idt_verify(id_token, strlen(id_token), &p->keys, &x, claims);
	}
	return *why == IDT_OK ? TH_OK : TH_EUNAUTHORIZED;
}

/* key=value&... with each value escaped; into out (size).  -1 if too long. */
static int form_add(CURL *c, char *out, size_t size, const char *key, const char *value)
{
	char *esc = curl_easy_escape(c, value, 0);
	size_t n = strlen(out);
	int w;

	if (!esc)
		return -1;
	w = snprintf(out + n, size - n, "%s%s=%s", n ? "&" : "", key, esc);
	curl_free(esc);
	return w < 0 || (size_t)w >= size - n ? -1 : 0;
}

enum th_err oidcp_token(struct oidc_provider *p, const char *code, const char *verifier,
			const char *redirect_uri, char *id_token, size_t size)
{
	char form[8192] = "", *user = NULL, *pass = NULL;
	struct json_object *o = NULL, *v;
	long status = 0;
	enum th_err e = TH_EUNAVAILABLE;

	if (!handle)
		handle = curl_easy_init();
	if (!handle || form_add(handle, form, sizeof(form), "grant_type", "authorization_code") ||
	    form_add(handle, form, sizeof(form), "code", code) ||
	    form_add(handle, form, sizeof(form), "redirect_uri", redirect_uri) ||
	    form_add(handle, form, sizeof(form), "code_verifier", verifier))
		return TH_EUNAVAILABLE;
	if (p->client_secret[0]) {
		/* client_secret_basic: both form-encoded first (RFC 6749 2.3.1) */
		user = curl_easy_escape(handle, p->client_id, 0);
		pass = curl_easy_escape(handle, p->client_secret, 0);
		if (!user || !pass)
			goto out;
	} else if (form_add(handle, form, sizeof(form), "client_id", p->client_id)) {
		goto out;
	}
	e = http_json(p->token_url, form, user, pass, &status, &o);
	if (status >= 400 && status < 500) {
		/* invalid_grant: a used, expired or foreign code (whatever the body) */
		log_info("oidc: %s refused the code (%ld)", p->name, status);
		e = TH_EUNAUTHORIZED;
		goto out;
	}
	if (e != TH_OK)
		goto out;
	if (status < 200 || status > 299 || !json_object_object_get_ex(o, "id_token", &v) ||
	    !json_object_is_type(v, json_type_string) ||
	    (size_t)json_object_get_string_len(v) >= size) {
		log_warn("oidc: %s: the token endpoint answered %ld without an ID token", p->name,
			 status);
		e = TH_EUNAVAILABLE;
		goto out;
	}
	snprintf(id_token, size, "%s", json_object_get_string(v));
	e = TH_OK;
out:
	curl_free(user);
	curl_free(pass);
	json_object_put(o);
	return e;
}
