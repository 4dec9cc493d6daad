/* turn: TURN credentials in coturn's REST-API form (use-auth-secret):
 *   username   = "<expiry unix time>:<user_id>"
 *   credential = base64(HMAC-SHA1(shared secret, username))
 * coturn recomputes the credential from the username and its
 * static-auth-secret and refuses it once the expiry has passed.
 *
 * Settings (read at start-up; a malformed value stops the worker):
 *   TH_TURN_SECRET_FILE  the shared secret (default $TH_VAR_DIR/keys/turn.secret);
 *                        trailing whitespace is not part of it
 *   TH_TURN_HOST         host in the URLs (127.0.0.1): a name or an IPv4 address
 *   TH_TURN_PORT         listening port of coturn (TH_PORT_BASE + 5)
 *   TH_TURN_TTL          credential lifetime in seconds (3600: a credential
 *                        handed to a member who is banned later relays for an
 *                        hour at most)
 * The secret file is read on first use and kept for the worker's life; while
 * it is missing, GET /api/turn answers 503 and calls carry "ice_servers": []
 * (a stack without coturn still has calls).  A TH_TURN_SECRET_FILE given
 * explicitly must be readable at start. */
#include <json-c/json.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "jh.h"
#include "log.h"
#include "realtime.h"

#define TURN_SECRET_MAX 512

static struct {
	char host[256];
	long port;
	long long ttl;
	char secret_file[1024];
	char secret[TURN_SECRET_MAX + 1];
	size_t secret_len; /* 0 until loaded */
	int warned;        /* logged the missing file once */
} turn;

/* Reads the secret file; 0 when loaded. */
static int secret_load(void)
{
	FILE *f;
	size_t n;

	if (turn.secret_len)
		return 0;
	f = fopen(turn.secret_file, "r");
	if (!f)
		goto fail;
	n = fread(turn.secret, 1, TURN_SECRET_MAX, f);
	fclose(f);
	while (n && (turn.secret[n - 1] == '\n' || turn.secret[n - 1] == '\r' ||
		     turn.secret[n - 1] == ' ' || turn.secret[n - 1] == '\t'))
		n--;
	if (n == 0 || memchr(turn.secret, '\0', n))
		goto fail;
	turn.secret[n] = '\0';
	turn.secret_len = n;
	return 0;
fail:
	if (!turn.warned) {
		log_warn("turn: no usable secret in %s: TURN credentials disabled",
			 turn.secret_file);
		turn.warned = 1;
	}
	return -1;
}

/* A host name, an IPv4 address or a [bracketed] IPv6 one: letters, digits,
 * '.', '-', ':', '[' and ']' only (it goes into URLs). */
static int host_ok(const char *h)
{
	if (!*h)
		return 0;
	for (; *h; h++)
		if (!((*h >= 'a' && *h <= 'z') || (*h >= 'A' && *h <= 'Z') ||
		      (*h >= '0' && *h <= '9') || *h == '.' || *h == '-' || *h == ':' ||
		      *h == '[' || *h == ']'))
			return 0;
	return 1;
}

int turn_init(void)
{
	const char *var = cfg_str("TH_VAR_DIR", ".");
	const char *file = cfg_str("TH_TURN_SECRET_FILE", NULL);
	const char *host = cfg_str("TH_TURN_HOST", "127.0.0.1");
	long long base = cfg_int("TH_PORT_BASE", 8080, 1, 65535 - 5);

	turn.port = (long)cfg_int("TH_TURN_PORT", base + 5, 1, 65535);
	turn.ttl = cfg_int("TH_TURN_TTL", 3600, 60, 30LL * 86400);
	if (strlen(host) >= sizeof(turn.host) || !host_ok(host)) {
		fprintf(stderr, "TH_TURN_HOST: not a host name or address: %s\n", host);
		return -1;
	}
	snprintf(turn.host, sizeof(turn.host), "%s", host);
	if (file) {
		snprintf(turn.secret_file, sizeof(turn.secret_file), "%s", file);
		if (secret_load() < 0) {
			fprintf(stderr, "TH_TURN_SECRET_FILE: cannot read a secret from %s\n",
				file);
			return -1;
		}
	} else {
		snprintf(turn.secret_file, sizeof(turn.secret_file), "%s/keys/turn.secret", var);
	}
	return 0;
}

struct json_object *turn_ice_servers(struct http_req *req)
{
	struct json_object *arr = jh_array(req), *srv, *urls;
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;
	char user[48], cred[64], url[300];

	if (!arr || secret_load() < 0)
		return arr;
	snprintf(user, sizeof(user), "%lld:%lld", (long long)time(NULL) + turn.ttl,
		 (long long)req->user_id);
	if (!HMAC(EVP_sha1(), turn.secret, (int)turn.secret_len, (const unsigned char *)user,
		  strlen(user), mac, &maclen)) {
		log_error("turn: HMAC-SHA1 failed");
		return arr;
	}
	sodium_bin2base64(cred, sizeof(cred), mac, maclen, sodium_base64_VARIANT_ORIGINAL);
	/* each part is added to its parent at once: the request's array owns it */
	srv = json_object_new_object();
	if (!srv || json_object_array_add(arr, srv) < 0)
		return NULL;
	urls = json_object_new_array();
	if (!urls || json_object_object_add(srv, "urls", urls) < 0)
		return NULL;
	snprintf(url, sizeof(url), "stun:%s:%ld", turn.host, turn.port);
	json_object_array_add(urls, json_object_new_string(url));
	snprintf(url, sizeof(url), "turn:%s:%ld?transport=udp", turn.host, turn.port);
	json_object_array_add(urls, json_object_new_string(url));
	snprintf(url, sizeof(url), "turn:%s:%ld?transport=tcp", turn.host, turn.port);
	json_object_array_add(urls, json_object_new_string(url));
	json_object_object_add(srv, "username", json_object_new_string(user));
	json_object_object_add(srv, "credential", json_object_new_string(cred));
	return arr;
}

/* GET /api/turn: any signed-in user. */
void turn_get(struct http_req *req)
{
	struct json_object *ice = turn_ice_servers(req), *o;

	if (!ice) {
		http_reply_error(req, TH_EINTERNAL, "out of memory", NULL);
		return;
	}
	if (json_object_array_length(ice) == 0) {
		http_reply_error(req, TH_EUNAVAILABLE, "TURN is not configured on this server",
				 NULL);
		http_set_header(req, "Retry-After", "60");
		return;
	}
	o = json_object_new_object();
	if (!o) {
		http_reply_error(req, TH_EINTERNAL, "out of memory", NULL);
		return;
	}
	json_object_object_add(o, "ice_servers", json_object_get(ice));
	json_object_object_add(o, "ttl", json_object_new_int64(turn.ttl));
	http_reply_json(req, 200, o);
	http_set_header(req, "Cache-Control", "no-store");
}
