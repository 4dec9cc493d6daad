/* push: Web Push subscriptions (API.md v1.1 "Mentions and notifications",
 * the Web Push paragraph).  A browser's PushSubscription is stored here;
 * notify() queues a push row per subscription of each notified user and
 * th-pusher (fcgi-apps/push) sends it when the user has no live connection
 * (db/migrations/0026_push.sql).
 *
 * An endpoint is the push service's URL for one browser: https, at most
 * 1024 bytes, its host on an allow-list (TH_PUSH_ALLOWED_HOSTS, comma-
 * separated, "*.example.com" matching any subdomain; default the big push
 * services), so the server never POSTs to an address a user picked.  It is
 * unique: registering an endpoint another user registered takes it over
 * (the browser now belongs to the caller) and drops the pushes queued for
 * the previous owner.  At most PUSH_SUBS_MAX a user: the oldest goes.
 *
 * TH_PUSH_ALLOW_LOOPBACK_HTTP=1 (set by tests/integration/run only, never
 * in a deployment) also accepts http://127.0.0.1[:port]/...: the
 * integration test's local push service. */
#include <ctype.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "db.h"
#include "jh.h"
#include "userlimits.h"
#include "log.h"
#include "realtime.h"
#include "reply.h"
#include "webpush.h"

#define PUSH_SUBS_MAX 10
#define PUSH_ENDPOINT_MAX 1024
#define PUSH_HOSTS_MAX 32
#define PUSH_HOST_LEN 256
#define PUSH_DEFAULT_HOSTS                                                                        \
	"fcm.googleapis.com,updates.push.services.mozilla.com,*.notify.windows.com,*.push.apple." \
	"com"

static char hosts[PUSH_HOSTS_MAX][PUSH_HOST_LEN];
static int nhosts;
static int loopback_http;
static struct webpush_vapid *vapid;

int push_init(void)
{
	const char *list = cfg_str("TH_PUSH_ALLOWED_HOSTS", PUSH_DEFAULT_HOSTS);
	const char *p = list;

	while (*p) {
		size_t n = strcspn(p, ",");

		while (n > 0 && isspace((unsigned char)*p)) {
			p++;
			n--;
		}
		if (n > 0) {
			if (nhosts == PUSH_HOSTS_MAX || n >= PUSH_HOST_LEN) {
				fprintf(stderr,
					"realtime: TH_PUSH_ALLOWED_HOSTS: at most %d hosts "
					"of %d bytes\n",
					PUSH_HOSTS_MAX, PUSH_HOST_LEN - 1);
				return -1;
			}
			for (size_t i = 0; i < n; i++)
				hosts[nhosts][i] = (char)tolower((unsigned char)p[i]);
			while (n > 0 && isspace((unsigned char)hosts[nhosts][n - 1]))
				n--;
			hosts[nhosts][n] = '\0';
			nhosts++;
		}
		p += strcspn(p, ",");
		if (*p == ',')
			p++;
	}
	loopback_http = (int)cfg_int("TH_PUSH_ALLOW_LOOPBACK_HTTP", 0, 0, 1);
	/* without a key the routes answer 503; the rest of the app works */
	vapid = webpush_vapid_load(cfg_str("TH_VAPID_KEY_FILE", NULL),
				   cfg_str("TH_VAPID_SUBJECT", "mailto:admin@townhall.localhost"));
	if (!vapid)
		log_warn("push: no VAPID key: Web Push is off");
	return 0;
}

static int host_allowed(const char *host)
{
	size_t hl = strlen(host);

	for (int i = 0; i < nhosts; i++) {
		const char *h = hosts[i];

		if (strncmp(h, "*.", 2) == 0) {
			size_t sl = strlen(h + 1); /* ".example.com" */

			if (hl > sl && strcmp(host + hl - sl, h + 1) == 0)
				return 1;
		} else if (strcmp(host, h) == 0) {
			return 1;
		}
	}
	return 0;
}

/* 1 when url may receive pushes: https on an allowed host (or the test's
 * loopback http), printable ASCII without spaces, quotes or userinfo. */
static int endpoint_ok(const char *url)
{
	char host[PUSH_HOST_LEN];
	const char *h, *end, *p;
	int http;
	size_t n;

	for (p = url; *p; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f ||
		    strchr("\"'<>\\`", *p))
			return 0;
	http = strncmp(url, "http://", 7) == 0;
	if (!http && strncmp(url, "https://", 8) != 0)
		return 0;
	h = url + (http ? 7 : 8);
	end = h + strcspn(h, ":/?#");
	n = (size_t)(end - h);
	/* no userinfo: what stands before an '@' is no host */
	if (n == 0 || n >= sizeof(host) || memchr(h, '@', strcspn(h, "/?#")))
		return 0;
	for (size_t i = 0; i < n; i++)
		host[i] = (char)tolower((unsigned char)h[i]);
	host[n] = '\0';
	if (http)
		return loopback_http && strcmp(host, "127.0.0.1") == 0;
	return host_allowed(host);
}

/* base64url of exactly want bytes, as hex into out (2 * want + 1). */
static int key_hex(const char *b64, size_t want, unsigned char *bin, char *out)
{
	static const char xd[] = "0123456789abcdef";

	if (webpush_b64url_decode(b64, bin, want) != (long)want)
		return -1;
	for (size_t i = 0; i < want; i++) {
		out[2 * i] = xd[bin[i] >> 4];
		out[2 * i + 1] = xd[bin[i] & 15];
	}
	out[2 * want] = '\0';
	return 0;
}

/* The body's endpoint, checked: 0, or -1 with 400 replied. */
static int endpoint_or_400(struct http_req *req, const char **endpoint)
{
	if (jh_string_or_400(req, req->json, "endpoint", 1, PUSH_ENDPOINT_MAX, JH_REQUIRED,
			     endpoint) < 0)
		return -1;
	if (strlen(*endpoint) > PUSH_ENDPOINT_MAX || !endpoint_ok(*endpoint)) {
		http_reply_error(req, TH_EVALIDATION,
				 "endpoint must be an https URL of an allowed push service",
				 "endpoint");
		return -1;
	}
	return 0;
}

/* GET /api/push/vapid: {public_key}, the applicationServerKey of
 * PushManager.subscribe(). */
void push_vapid(struct http_req *req)
{
	struct json_object *o;

	if (!vapid) {
		http_reply_error(req, TH_EUNAVAILABLE, "Web Push is not configured", NULL);
		return;
	}
	o = jh_object(req);
	if (!o || json_object_object_add(o, "public_key",
					 json_object_new_string(webpush_vapid_public(vapid))) < 0) {
		http_reply_error(req, TH_EINTERNAL, "out of memory", NULL);
		return;
	}
	http_reply_json(req, 200, json_object_get(o));
}

/* PUT /api/push/subscriptions {endpoint, keys: {p256dh, auth}}: 201, or 200
 * when the endpoint was the caller's already (its keys updated). */
void push_subscribe(struct http_req *req)
{
	const char *endpoint, *p256dh = NULL, *auth = NULL;
	unsigned char pub[WEBPUSH_P256_LEN], sec[WEBPUSH_AUTH_LEN];
	char pub_hex[2 * WEBPUSH_P256_LEN + 1], auth_hex[2 * WEBPUSH_AUTH_LEN + 1], me[24], max[24];
	struct json_object *keys = NULL, *o;
	struct db_res *r;
	int existed;

	if (!vapid) {
		http_reply_error(req, TH_EUNAVAILABLE, "Web Push is not configured", NULL);
		return;
	}
	if (endpoint_or_400(req, &endpoint) < 0)
		return;
	if (!json_object_object_get_ex(req->json, "keys", &keys) ||
	    !json_object_is_type(keys, json_type_object)) {
		http_reply_error(req, TH_EVALIDATION, "keys must be an object {p256dh, auth}",
				 "keys");
		return;
	}
	if (jh_string_or_400(req, keys, "p256dh", 1, 128, JH_REQUIRED, &p256dh) < 0 ||
	    jh_string_or_400(req, keys, "auth", 1, 64, JH_REQUIRED, &auth) < 0)
		return;
	if (key_hex(p256dh, sizeof(pub), pub, pub_hex) < 0 || !webpush_p256_ok(pub, sizeof(pub))) {
		http_reply_error(req, TH_EVALIDATION,
				 "keys.p256dh must be an uncompressed P-256 point in base64url",
				 "keys.p256dh");
		return;
	}
	if (key_hex(auth, sizeof(sec), sec, auth_hex) < 0) {
		http_reply_error(req, TH_EVALIDATION, "keys.auth must be 16 bytes in base64url",
				 "keys.auth");
		return;
	}
	if (limits_take_or_reply(req, LIMIT_PUSH) < 0 || db_begin_or_reply(req) < 0)
		return;
	{
		const char *params[] = {ids_text(me, req->user_id), endpoint, pub_hex, auth_hex};

		/* the row locked first: a takeover and the old owner's queued
		 * pushes (never to be shown to the new owner) go together */
		r = db_exec_or_reply(req, DB_PRIMARY,
				     "WITH old AS (SELECT id, user_id FROM push_subscriptions "
				     "WHERE endpoint = $2 "
				     "FOR UPDATE), "
				     "gone AS (DELETE FROM push_outbox WHERE subscription_id IN "
				     "(SELECT id FROM old WHERE user_id <> $1) RETURNING 1), "
				     "up AS (INSERT INTO push_subscriptions (user_id, endpoint, "
				     "p256dh, auth) "
				     "VALUES ($1, $2, decode($3, 'hex'), decode($4, 'hex')) "
				     "ON CONFLICT (endpoint) DO UPDATE SET user_id = "
				     "EXCLUDED.user_id, "
				     "p256dh = EXCLUDED.p256dh, auth = EXCLUDED.auth, created_at = "
				     "now() "
				     "RETURNING id) "
				     "SELECT coalesce((SELECT user_id = $1 FROM old), false), "
				     "(SELECT count(*) FROM gone)",
				     4, params);
	}
	if (!r)
		return;
	existed = strcmp(db_res_get(r, 0, 0), "t") == 0;
	db_res_free(r);
	{
		const char *params[] = {me, ids_text(max, PUSH_SUBS_MAX)};

		/* the oldest beyond the bound go */
		r = db_exec_or_reply(req, DB_PRIMARY,
				     "DELETE FROM push_subscriptions WHERE user_id = $1 AND id NOT "
				     "IN "
				     "(SELECT id FROM push_subscriptions WHERE user_id = $1 "
				     "ORDER BY created_at DESC, id DESC LIMIT $2)",
				     2, params);
	}
	if (!r)
		return;
	db_res_free(r);
	if (db_commit_or_reply(req) < 0)
		return;
	o = jh_object(req);
	if (!o || json_object_object_add(o, "endpoint", json_object_new_string(endpoint)) < 0) {
		http_reply_error(req, TH_EINTERNAL, "out of memory", NULL);
		return;
	}
	http_reply_json(req, existed ? 200 : 201, json_object_get(o));
}

/* DELETE /api/push/subscriptions {endpoint}: 204, also when it was not the
 * caller's (nothing said about another user's endpoint). */
void push_unsubscribe(struct http_req *req)
{
	const char *endpoint;
	char me[24];
	struct db_res *r;

	if (jh_string_or_400(req, req->json, "endpoint", 1, PUSH_ENDPOINT_MAX, JH_REQUIRED,
			     &endpoint) < 0 ||
	    limits_take_or_reply(req, LIMIT_SETTING) < 0)
		return;
	{
		const char *params[] = {ids_text(me, req->user_id), endpoint};

		r = db_exec_or_reply(req, DB_PRIMARY,
				     "WITH s AS (DELETE FROM push_subscriptions WHERE user_id = $1 "
				     "AND endpoint = $2 RETURNING id) "
				     "DELETE FROM push_outbox WHERE subscription_id IN (SELECT id "
				     "FROM s)",
				     2, params);
	}
	if (!r)
		return;
	db_res_free(r);
	http_reply_empty(req, 204);
}
