/* conns: pointer-keyed registry of user connections, and per-user counts. */
#include "conns.h"

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "acl.h"
#include "imap.h"
#include "revoke.h"

#define PRESENCE_MAX_COMMUNITIES 1000

struct conn {
	int64_t uid, sid, expires_at;
	char *client_id;   /* owned copy: the broker's may be gone when we kick */
};

static struct imap by_client;  /* (intptr_t)client -> (intptr_t)struct conn * */
static struct imap per_user;   /* uid -> number of live connections */
static time_t last_sweep;

int conns_init(void)
{
	if (imap_init(&by_client, 1024) < 0 || imap_init(&per_user, 1024) < 0)
		return -1;
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
	imap_free(&per_user);
}

size_t conns_count(void) { return by_client.len; }

long conns_of_user(int64_t uid)
{
	int64_t *n = imap_get(&per_user, uid);

	return n ? (long)*n : 0;
}

int conns_is_live(struct mosquitto *client)
{
	return imap_get(&by_client, (int64_t)(intptr_t)client) != NULL;
}
size_t conns_users(void) { return per_user.len; }

/* Publishes the user's status, retained, to each of their communities. */
static void presence(int64_t uid, const char *status)
{
	int64_t ids[PRESENCE_MAX_COMMUNITIES];
	char topic[96], payload[96];
	struct timeval tv;
	struct tm tm;
	int n, len;

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

void conns_add(struct mosquitto *client, const char *client_id, int64_t uid, int64_t sid,
	       int64_t expires_at)
{
	struct conn *c = calloc(1, sizeof(*c));
	int64_t *count, *old;

	if (!c)
		return;
	c->uid = uid;
	c->sid = sid;
	c->expires_at = expires_at;
	c->client_id = strdup(client_id);
	/* the same client object authenticating again (re-auth) replaces */
	old = imap_get(&by_client, (int64_t)(intptr_t)client);
	if (old) {
		conns_remove(client);
	}
	if (!c->client_id || imap_put(&by_client, (int64_t)(intptr_t)client, (int64_t)(intptr_t)c) < 0) {
		free(c->client_id);
		free(c);
		return;
	}
	/* counted per connection, not per client id: on a session takeover
	 * the new connection is added before the old one is removed, so the
	 * user never looks offline in between */
	count = imap_get(&per_user, uid);
	if (count) {
		(*count)++;
		return;
	}
	imap_put(&per_user, uid, 1);
	presence(uid, "online");
}

void conns_remove(struct mosquitto *client)
{
	int64_t *v = imap_get(&by_client, (int64_t)(intptr_t)client), *count;
	struct conn *c;
	int64_t uid;

	if (!v)
		return;
	c = (struct conn *)(intptr_t)*v;
	imap_del(&by_client, (int64_t)(intptr_t)client);
	uid = c->uid;
	free(c->client_id);
	free(c);
	count = imap_get(&per_user, uid);
	if (!count)
		return;
	if (--*count > 0)
		return;
	imap_del(&per_user, uid);
	presence(uid, "offline");
}

void conns_tick(time_t now)
{
	char **kick = NULL;
	size_t nkick = 0, cap = 0, i;

	if (now == last_sweep)
		return;
	last_sweep = now;
	for (i = 0; i < by_client.cap; i++) {
		struct conn *c;

		if (!by_client.slots[i].key)
			continue;
		c = (struct conn *)(intptr_t)by_client.slots[i].val;
		/* expired token, or revoked session (revoke_check refreshes its
		 * copy at most once a second); "cannot decide" keeps the
		 * connection: it was verified, and a Redis and PostgreSQL outage
		 * must not drop every client */
		if (now < c->expires_at && revoke_check(c->sid) != 1)
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
			mosquitto_log_printf(MOSQ_LOG_INFO, "townhall: closing %s (token expired or session revoked)",
					     kick[i]);
			mosquitto_kick_client_by_clientid(kick[i], false);
			free(kick[i]);
		}
	}
	free(kick);
}
