/* th-pusher: push_outbox -> the browsers' push services (Web Push).
 *
 * The loop (claim with a lease, backoff, bounded attempts, metrics) is the
 * core's outbox module (lib/outbox.h), shared with th-mailer; here: the
 * send of one row.
 *   - the user has a live connection (presence in Redis, lib/presence.h):
 *     the inbox event reaches them, the row is dropped (counted); a row
 *     younger than TH_PUSH_ONLINE_RECHECK_S (5 s) is asked about again
 *     2.5 s later first (the brokers count a closed connection for their
 *     presence grace, 2 s); when Redis cannot answer the push is sent (a
 *     duplicate beats a miss);
 *   - older than TH_PUSH_TTL_S (default 1 day): dropped (expired);
 *   - else the notification JSON is encrypted for the subscription (RFC
 *     8291, lib/webpush.h) and POSTed with a VAPID authorization (RFC
 *     8292), TTL (what is left of TH_PUSH_TTL_S), Urgency (high for a
 *     mention, DM, reply or call, else normal);
 *   - 200/201/202: done; 404/410: the subscription is gone (deleted, its
 *     queued rows with it); 413: dropped; 429, 5xx, network: again after a
 *     backoff, at most TH_PUSH_MAX_ATTEMPTS; other 4xx: failed for good.
 *     A row failed for good is deleted (counted, its reason logged).
 *
 * Settings: TH_VAPID_KEY_FILE, TH_VAPID_SUBJECT, TH_PUSH_TTL_S, TH_PUSH_ONLINE_RECHECK_S,
 * TH_PUSH_TIMEOUT_S, TH_PUSH_BATCH, TH_PUSH_MAX_ATTEMPTS,
 * TH_PUSH_RETRY_BASE_MS, TH_PUSH_RETRY_MAX_MS, TH_PUSH_POLL_MS,
 * TH_PUSHER_ID; Redis as every worker (TH_REDIS_*).
 * Metrics ($TH_VAR_DIR/run/pusher.metrics): push_sent_total,
 * push_failed_total, push_retried_total, push_dropped_total (online,
 * expired, 413), push_online_total, push_expired_total, push_gone_total
 * (subscriptions removed), push_queue_depth, the "send" histogram. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cache.h"
#include "config.h"
#include "db.h"
#include "log.h"
#include "metrics.h"
#include "mono.h"
#include "outbox.h"
#include "presence.h"
#include "pusher.h"
#include "webpush.h"

/* how long a row of an online user waits before its user is asked about
 * again (pusher.recheck_s) */
#define ONLINE_RECHECK_MS 2500

struct pusher {
	struct webpush_vapid *vapid;
	long ttl_s;
	long recheck_s; /* TH_PUSH_ONLINE_RECHECK_S */
	int c_online, c_expired, c_gone;
};

/* hex of exactly n bytes into out */
static int unhex(const char *s, unsigned char *out, size_t n)
{
	size_t got = 0;

	if (!s || strlen(s) != 2 * n || sodium_hex2bin(out, n, s, 2 * n, NULL, &got, NULL) != 0 ||
	    got != n)
		return -1;
	return 0;
}

static const char *urgency_of(const char *payload)
{
	static const char *const high[] = {"\"type\": \"mention\"", "\"type\": \"dm\"",
					   "\"type\": \"reply\"", "\"type\": \"call\""};

	for (size_t i = 0; i < sizeof(high) / sizeof(high[0]); i++)
		if (strstr(payload, high[i]))
			return "high";
	return "normal";
}

/* The push service says the subscription is gone: it goes, with every row
 * queued for it (this one included). */
static void subscription_gone(struct pusher *p, const char *sub, const char *id, int status)
{
	const char *params[] = {sub};
	struct db_res *r = db_exec(DB_PRIMARY,
				   "WITH s AS (DELETE FROM push_subscriptions WHERE id = $1) "
				   "DELETE FROM push_outbox WHERE subscription_id = $1",
				   1, params);

	if (!r) {
		/* the row stays claimed until its lease ends, then is tried again */
		log_error("pusher: subscription %s: cannot delete it: %s", sub, db_last_error());
		return;
	}
	db_res_free(r);
	metrics_add(p->c_gone, 1);
	log_info("pusher: push %s: HTTP %d, subscription %s removed", id, status, sub);
}

/* cols: user_id, payload, age (s), subscription id, endpoint, p256dh hex, auth hex */
static void send_one(struct outbox *ob, const char *id, long attempts, const char *const *cols,
		     void *arg)
{
	struct pusher *p = arg;
	unsigned char ua_pub[WEBPUSH_P256_LEN], auth[WEBPUSH_AUTH_LEN], *body = NULL;
	const char *payload = cols[1], *sub = cols[3], *endpoint = cols[4];
	long age = strtol(cols[2], NULL, 10);
	char *authz = NULL, err[256];
	size_t len = 0;
	uint64_t t0;
	int online, status;

	if (!endpoint || !endpoint[0]) {
		outbox_drop(ob, id); /* the subscription went meanwhile */
		goto out;
	}
	online = presence_online(strtoll(cols[0], NULL, 10), NULL);
	/* a user's last connection still counts for the brokers' presence
	 * grace (2 s, TH_MQTT_PRESENCE_GRACE_MS) after it closed: a young row
	 * of an online user is asked about again a little later, so a tab
	 * closed a moment before the notification does not lose its push */
	if (online == 1 && age < p->recheck_s) {
		outbox_later(ob, id, ONLINE_RECHECK_MS);
		goto out;
	}
	if (online == 1) {
		outbox_drop(ob, id);
		metrics_add(p->c_online, 1);
		goto out;
	}
	if (age >= p->ttl_s) {
		outbox_drop(ob, id);
		metrics_add(p->c_expired, 1);
		goto out;
	}
	if (unhex(cols[5], ua_pub, sizeof(ua_pub)) < 0 || unhex(cols[6], auth, sizeof(auth)) < 0 ||
	    webpush_encrypt(ua_pub, auth, payload, strlen(payload), NULL, NULL, NULL, &body, &len) <
		    0) {
		outbox_failed(ob, id, attempts, 1, "cannot encrypt: bad key or payload");
		goto out;
	}
	authz = webpush_vapid_header(p->vapid, endpoint, (long)time(NULL), WEBPUSH_VAPID_TTL_S);
	if (!authz) {
		outbox_failed(ob, id, attempts, 1, "cannot sign the VAPID token");
		goto out;
	}
	t0 = mono_us();
	status = push_post(endpoint, authz, p->ttl_s - age, urgency_of(payload), body, len, err,
			   sizeof(err));
	outbox_observe(ob, status > 0 ? status : 504, mono_us() - t0);
	if (status == 200 || status == 201 || status == 202) {
		outbox_done(ob, id);
	} else if (status == 404 || status == 410) {
		subscription_gone(p, sub, id, status);
	} else if (status == 413) {
		outbox_drop(ob, id);
		log_warn("pusher: push %s: 413, dropped", id);
	} else if (status < 0 || status == 429 || status >= 500) {
		outbox_failed(ob, id, attempts, 0, err);
	} else {
		outbox_failed(ob, id, attempts, 1, err);
	}
out:
	free(body);
	free(authz);
}

int main(void)
{
	struct pusher p = {0};
	struct outbox_cfg cfg =
		{.name = "pusher",
		 .metric = "push",
		 .env = "TH_PUSH",
		 .table = "push_outbox",
		 .cols = "m.user_id, m.payload::text, "
			 "extract(epoch FROM now() - m.created_at)::bigint, m.subscription_id, "
			 "(SELECT s.endpoint FROM push_subscriptions s WHERE s.id = "
			 "m.subscription_id), "
			 "(SELECT encode(s.p256dh, 'hex') FROM push_subscriptions s "
			 "WHERE s.id = m.subscription_id), "
			 "(SELECT encode(s.auth, 'hex') FROM push_subscriptions s "
			 "WHERE s.id = m.subscription_id)",
		 .ncols = 7,
		 .fail_set = NULL,
		 /* a push that failed for good is worth nothing later: no row kept */
		 .drop_failed = 1,
		 .channel = "townhall_push",
		 .send = send_one,
		 .arg = &p};
	struct outbox *ob;
	int rc = 1;

	log_init("pusher");
	if (sodium_init() < 0 || push_http_init() < 0)
		return 1;
	p.ttl_s = (long)cfg_int("TH_PUSH_TTL_S", 86400, 60, 28 * 86400);
	p.recheck_s = (long)cfg_int("TH_PUSH_ONLINE_RECHECK_S", 5, 0, 600);
	p.vapid = webpush_vapid_load(cfg_str("TH_VAPID_KEY_FILE", NULL),
				     cfg_str("TH_VAPID_SUBJECT",
					     "mailto:admin@townhall.localhost"));
	if (!p.vapid || cache_init_env(1000, 1) < 0)
		goto out;
	cfg.send_timeout_s = push_http_timeout_s();
	ob = outbox_open(&cfg);
	if (!ob)
		goto out;
	p.c_online = outbox_counter(ob, "online_total");
	p.c_expired = outbox_counter(ob, "expired_total");
	p.c_gone = outbox_counter(ob, "gone_total");
	rc = outbox_run(ob);
out:
	cache_close();
	webpush_vapid_free(p.vapid);
	push_http_fini();
	return rc;
}
