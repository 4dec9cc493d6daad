/* conns: pointer-keyed registry of user connections; counts and presence
 * through presence.c. */
#include "conns.h"

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "acl.h"
#include "grace.h"
#include "imap.h"
#include "mono.h"
#include "presence.h"
#include "revoke.h"

#define PRESENCE_MAX_COMMUNITIES 1000
/* lingering connections whose grace ended taken off the count in one tick,
 * at most: one Redis round trip each, as any disconnect */
#define GRACE_DUE_PER_TICK 256

struct conn {
	int64_t uid, sid, expires_at;
	char *client_id; /* owned copy: the broker's may be gone when we kick */
};

static struct imap by_client; /* (intptr_t)client -> (intptr_t)struct conn * */
static struct presence *pres; /* per-user counts, here and in Redis */
static time_t last_sweep;

static void announce(int64_t uid, int online, void *arg);

int conns_init(const char *broker_id, long lease_ms, long grace_ms)
{
	struct presence_cfg cfg = {
		.broker_id = broker_id,
		.lease_ms = lease_ms,
		.announce = announce,
	};

	if (imap_init(&by_client, 1024) < 0 || grace_init(grace_ms) < 0)
		return -1;
	pres = presence_open(&cfg);
	if (!pres)
		return -1;
	/* register now (Redis is normally up at start), so that the first
	 * connections are counted in Redis at once */
	presence_tick(pres);
	return 0;
}

void conns_close(void)
{
	for (size_t i = 0; i < by_client.cap; i++) {
		if (by_client.slots[i].key) {
			struct conn *c = (struct conn *)(intptr_t)by_client.slots[i].val;

			free(c->client_id);
			free(c);
		}
	}
	imap_free(&by_client);
	/* a clean stop: others reap our users now, not after the lease (the
	 * lingering connections too: they are in our counts) */
	grace_close();
	presence_close(pres, 1);
	pres = NULL;
}

size_t conns_count(void)
{
	return by_client.len;
}

long conns_of_user(int64_t uid)
{
	return presence_local(pres, uid);
}

int conns_is_live(struct mosquitto *client)
{
	return imap_get(&by_client, (int64_t)(intptr_t)client) != NULL;
}
size_t conns_users(void)
{
	return (size_t)presence_users(pres);
}

/* Publishes the user's status, retained, to each of their communities
 * (presence.c decided it: first or last connection over every broker). */
static void announce(int64_t uid, int online, void *arg)
{
	const char *status = online ? "online" : "offline";
	int64_t ids[PRESENCE_MAX_COMMUNITIES];
	char topic[96], payload[96];
	struct timeval tv;
	struct tm tm;
	int n, len;

	(void)arg;
	n = acl_user_communities(uid, ids, PRESENCE_MAX_COMMUNITIES);
	if (n < 0) {
		mosquitto_log_printf(MOSQ_LOG_WARNING,
				     "townhall: presence of user %lld not published (Redis)",
				     (long long)uid);
		return;
	}
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	len = snprintf(payload, sizeof(payload),
		       "{\"status\":\"%s\",\"at\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03dZ\"}", status,
		       tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
		       tm.tm_sec, (int)(tv.tv_usec / 1000));
	for (int i = 0; i < n; i++) {
		snprintf(topic, sizeof(topic), "presence/%lld/%lld", (long long)ids[i],
			 (long long)uid);
		mosquitto_broker_publish_copy(NULL, topic, len, payload, 1, true, NULL);
	}
}

int conns_add(struct mosquitto *client, const char *client_id, int64_t uid, int64_t sid,
	      int64_t expires_at, long limit)
{
	int64_t key = (int64_t)(intptr_t)client, *old = imap_get(&by_client, key);
	struct conn *c;
	char *cid;

	/* the same client object authenticating again (re-auth): the same
	 * connection, so the counts do not change */
	if (old) {
		c = (struct conn *)(intptr_t)*old;
		if (c->uid == uid) {
			cid = strdup(client_id);
			if (!cid)
				return -1;
			free(c->client_id);
			c->client_id = cid;
			c->sid = sid;
			c->expires_at = expires_at;
			return 0;
		}
		conns_remove(client);
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return -1;
	c->uid = uid;
	c->sid = sid;
	c->expires_at = expires_at;
	c->client_id = strdup(client_id);
	if (!c->client_id)
		goto fail;
	/* counted per connection, not per client id: on a session takeover
	 * the new connection is added before the old one is removed, so the
	 * user never looks offline in between.  A lingering connection of the
	 * user (grace.h) is still counted: the new one takes its place, and
	 * "online" is said again (no "offline" came before it): a client
	 * reconnects after joining a community to appear online there
	 * (townhall.js reconnect()). */
	if (grace_lingers(uid)) {
		if (presence_unlinger(pres, uid, limit) != PRESENCE_OK)
			goto fail;
		grace_cancel(uid);
		announce(uid, 1, NULL);
	} else if (presence_connect(pres, uid, limit) != PRESENCE_OK) {
		goto fail;
	}
	if (imap_put(&by_client, key, (int64_t)(intptr_t)c) < 0) {
		presence_disconnect(pres, uid);
		goto fail;
	}
	return 0;
fail:
	free(c->client_id);
	free(c);
	return -1;
}

void conns_remove(struct mosquitto *client)
{
	int64_t *v = imap_get(&by_client, (int64_t)(intptr_t)client);
	struct conn *c;
	int64_t uid;

	if (!v)
		return;
	c = (struct conn *)(intptr_t)*v;
	imap_del(&by_client, (int64_t)(intptr_t)client);
	uid = c->uid;
	free(c->client_id);
	free(c);
	/* a lingering connection stays in the count, but not against the
	 * user's limit on other brokers (presence.h) */
	if (grace_hold(uid, (long long)mono_ms()))
		presence_linger(pres, uid);
	else
		presence_disconnect(pres, uid);
}

/* Lingering connections whose grace ended leave the count: "offline" when
 * one was the user's last anywhere (presence.c decides). */
static void grace_expire(void)
{
	int64_t due[GRACE_DUE_PER_TICK];
	size_t n = grace_due((long long)mono_ms(), due, GRACE_DUE_PER_TICK);

	for (size_t i = 0; i < n; i++)
		presence_linger_gone(pres, due[i]);
}

void conns_tick(time_t now)
{
	char **kick = NULL;
	size_t nkick = 0, cap = 0, i;
	long long now_ms;

	presence_tick(pres);
	grace_expire();
	if (now == last_sweep)
		return;
	last_sweep = now;
	/* one clock read for the pass, not one a connection: the pass is
	 * what an idle connection costs the broker */
	now_ms = revoke_now_ms();
	for (i = 0; i < by_client.cap; i++) {
		struct conn *c;

		if (!by_client.slots[i].key)
			continue;
		c = (struct conn *)(intptr_t)by_client.slots[i].val;
		/* expired token, or revoked session (revoke_check refreshes its
		 * copy at most once a second); "cannot decide" keeps the
		 * connection: it was verified, and a Redis and PostgreSQL outage
		 * must not drop every client */
		if (now < c->expires_at && revoke_check_at(c->sid, now_ms) != 1)
			continue;
		if (nkick == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			char **nk = realloc(kick, ncap * sizeof(*kick));

			if (!nk)
				break;
			kick = nk;
			cap = ncap;
		}
		kick[nkick++] = strdup(c->client_id);
	}
	/* kick after the sweep: a kick runs DISCONNECT, which edits the table */
	for (i = 0; i < nkick; i++) {
		if (kick[i]) {
			mosquitto_log_printf(MOSQ_LOG_INFO,
					     "townhall: closing %s (token expired or session "
					     "revoked)",
					     kick[i]);
			mosquitto_kick_client_by_clientid(kick[i], false);
			free(kick[i]);
		}
	}
	free(kick);
}
