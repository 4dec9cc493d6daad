/* quota: per-client-id and per-user counters in plugin memory. */
#include "quota.h"

#include <json-c/json.h>
#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "acl.h"
#include "config.h"
#include "imap.h"
#include "jhcore.h"
#include "modrule.h"
#include "msess.h"
#include "ratelimit.h"
#include "mono.h"

#define QUOTA_SYNC_MS 200
#define QUOTA_SYNC_MAX 100 /* Redis round trips per tick, at most */
#define QUOTA_SWEEP_MS 60000
#define QUOTA_REPORT_MS 5000
/* Offline client ids whose subscription count is kept (persistent sessions).
 * Past it a disconnecting client's count is dropped: the broker may still
 * hold that session's subscriptions, so a user could then hold up to 200
 * more per such session; the cap only bounds memory against somebody
 * cycling through client ids (about 4 KiB each). */
#define QUOTA_OFFLINE_MAX 100000

struct quota_client {
	struct imap subs;     /* filter key -> 1 */
	int live;             /* connections using this client id (2 during a takeover) */
	long long offline_ms; /* when live fell to 0 (0: live) */
};

/* A per-user GCRA bucket: tat is the theoretical arrival time in ms. */
struct bucket {
	long long tat;
};

/* Per user, not per connection: a client that reconnects (a new client id
 * costs nothing) starts with what its user has left. */
struct user_rate {
	struct bucket chat, typing, signal;
	struct bucket connects; /* connections opened (accepted by BASIC_AUTH so far) */
	long pending;           /* chat publishes let through since the last sync */
	long long used_ms;      /* last use, for the sweep */
	double lookups;         /* Redis lookup tokens left */
	long long lookups_ms;   /* when lookups was last refilled */
	long long refused_s;    /* the second `refused` counts */
	long refused;
	long long cooldown_ms; /* closed for refusals: new connections refused until then */
};

static struct imap by_cid; /* keyed hash of the client id -> struct quota_client * */
static struct imap users;  /* uid -> struct user_rate * */
static unsigned char hkey[crypto_shorthash_KEYBYTES];
static long max_subs, lookups_per_s, lookup_burst, refused_per_s, session_ttl_s, cooldown_ms;
static long connect_interval_ms, connect_burst;
static long msg_interval_ms, msg_burst, typing_interval_ms, typing_burst, signal_interval_ms,
	signal_burst;
static long long last_sync_ms, last_sweep_ms;
static long offline_count;
/* users with chat publishes not yet booked in Redis: the sync walks the
 * table only when there are some, not five times a second per idle user */
static long users_pending;
unsigned long quota_kicks, quota_drops, quota_subs_full, quota_slow_drops, quota_limit_drops,
	quota_connects_refused;

/* Keyed (SipHash): a client cannot choose filters or ids that collide. */
static int64_t key_of(const char *s)
{
	uint64_t h;

	crypto_shorthash((unsigned char *)&h, (const unsigned char *)s, strlen(s), hkey);
	return (int64_t)(h | 1); /* 0 marks empty imap slots */
}

int quota_init(void)
{
	randombytes_buf(hkey, sizeof(hkey));
	max_subs = (long)cfg_int("TH_MQTT_MAX_SUBS", 200, 1, 100000);
	lookups_per_s = (long)cfg_int("TH_MQTT_LOOKUPS_PER_S", 200, 1, 1000000);
	lookup_burst = (long)cfg_int("TH_MQTT_LOOKUP_BURST", 500, 2, 1000000);
	refused_per_s = (long)cfg_int("TH_MQTT_REFUSED_PER_S", 100, 1, 1000000);
	session_ttl_s = (long)cfg_int("TH_MQTT_SESSION_TTL_S", 86400, 1, 86400 * 30);
	cooldown_ms = (long)cfg_int("TH_MQTT_KICK_COOLDOWN_MS", 2000, 0, 3600000);
	connect_interval_ms = (long)cfg_int("TH_MQTT_CONNECT_INTERVAL_MS", 1000, 1, 3600000);
	connect_burst = (long)cfg_int("TH_MQTT_CONNECT_BURST", 30, 1, 1000000);
	msg_interval_ms = (long)cfg_int("TH_RL_MSG_INTERVAL_MS", 100, 1, 3600000);
	msg_burst = (long)cfg_int("TH_RL_MSG_BURST", 30, 1, 100000);
	typing_interval_ms = (long)cfg_int("TH_MQTT_TYPING_INTERVAL_MS", 200, 1, 3600000);
	typing_burst = (long)cfg_int("TH_MQTT_TYPING_BURST", 10, 1, 100000);
	signal_interval_ms = (long)cfg_int("TH_MQTT_SIGNAL_INTERVAL_MS", 20, 1, 3600000);
	signal_burst = (long)cfg_int("TH_MQTT_SIGNAL_BURST", 100, 1, 100000);
	if (imap_init(&by_cid, 1024) < 0 || imap_init(&users, 1024) < 0)
		return -1;
	return 0;
}

static void client_free(struct quota_client *cl)
{
	imap_free(&cl->subs);
	free(cl);
}

void quota_close(void)
{
	for (size_t i = 0; i < by_cid.cap; i++)
		if (by_cid.slots[i].key)
			client_free((struct quota_client *)(intptr_t)by_cid.slots[i].val);
	for (size_t i = 0; i < users.cap; i++)
		if (users.slots[i].key)
			free((struct user_rate *)(intptr_t)users.slots[i].val);
	imap_free(&by_cid);
	imap_free(&users);
	users_pending = 0;
}

static struct user_rate *user_rate(int64_t uid);
static int take(struct bucket *b, long long now, long interval, long burst);

/* Empties cl's filter set.  The new table is made first: when memory runs
 * out the old one stays, which over-counts (refuses early), never under. */
static int subs_reset(struct quota_client *cl)
{
	struct imap fresh;

	if (imap_init(&fresh, 16) < 0)
		return -1;
	imap_free(&cl->subs);
	cl->subs = fresh;
	return 0;
}

static struct quota_client *find(struct mosquitto *client)
{
	const char *cid = mosquitto_client_id(client);
	int64_t *v;

	if (!cid)
		return NULL;
	v = imap_get(&by_cid, key_of(cid));
	return v ? (struct quota_client *)(intptr_t)*v : NULL;
}

struct quota_client *quota_client(struct mosquitto *client)
{
	const char *cid = mosquitto_client_id(client);
	struct quota_client *cl = find(client);

	if (cl || !cid)
		return cl;
	cl = calloc(1, sizeof(*cl));
	if (!cl || imap_init(&cl->subs, 16) < 0) {
		free(cl);
		return NULL;
	}
	if (imap_put(&by_cid, key_of(cid), (int64_t)(intptr_t)cl) < 0) {
		client_free(cl);
		return NULL;
	}
	return cl;
}

void quota_connect(struct mosquitto *client)
{
	struct quota_client *cl = quota_client(client);

	if (!cl)
		return;
	cl->live++;
	if (cl->offline_ms)
		offline_count--;
	cl->offline_ms = 0;
	/* a clean start drops the session's subscriptions in the broker */
	if (mosquitto_client_clean_session(client) && cl->subs.len)
		subs_reset(cl);
}

int quota_takeover(struct mosquitto *client)
{
	struct quota_client *cl = find(client);

	return cl && cl->live > 0;
}

void quota_disconnect(struct mosquitto *client, int session_ends)
{
	const char *cid = mosquitto_client_id(client);
	struct quota_client *cl = find(client);

	if (!cl)
		return;
	if (cl->live > 0)
		cl->live--;
	if (cl->live > 0)
		return; /* a takeover: the new connection holds the state */
	/* nothing to remember, or too much remembered already */
	if (session_ends || cl->subs.len == 0 || offline_count >= QUOTA_OFFLINE_MAX) {
		if (!session_ends && cl->subs.len)
			mosquitto_log_printf(MOSQ_LOG_WARNING,
					     "townhall: %d offline sessions tracked; forgetting "
					     "one",
					     QUOTA_OFFLINE_MAX);
		imap_del(&by_cid, key_of(cid));
		client_free(cl);
		return;
	}
	cl->offline_ms = (long long)mono_ms();
	offline_count++;
}

enum quota_sub quota_sub_admit(struct quota_client *cl, struct mosquitto *client, int64_t uid,
			       const char *filter, uint64_t *fh)
{
	*fh = (uint64_t)key_of(filter);
	/* the broker holds no subscription for this client (a session that
	 * did not carry over): neither do we */
	if (cl->subs.len && mosquitto_client_sub_count(client) == 0 && subs_reset(cl) < 0)
		return QUOTA_SUB_FULL;
	if (imap_get(&cl->subs, (int64_t)*fh))
		return QUOTA_SUB_OK;
	if ((long)cl->subs.len >= max_subs) {
		quota_subs_full++;
		return quota_sub_refused(uid) ? QUOTA_SUB_KICK : QUOTA_SUB_FULL;
	}
	return QUOTA_SUB_OK;
}

int quota_lookup_ok(int64_t uid)
{
	struct user_rate *u = user_rate(uid);
	long long now = (long long)mono_ms();

	if (!u)
		return 0;
	if (!u->lookups_ms)
		u->lookups = (double)lookup_burst;
	else
		u->lookups += (double)(now - u->lookups_ms) * (double)lookups_per_s / 1000.0;
	if (u->lookups > (double)lookup_burst)
		u->lookups = (double)lookup_burst;
	u->lookups_ms = now;
	u->used_ms = now;
	/* one decision needs up to two lookups */
	return u->lookups >= 2.0;
}

void quota_lookup_spent(int64_t uid, unsigned long n)
{
	struct user_rate *u = user_rate(uid);

	if (u)
		u->lookups -= (double)n;
}

int quota_sub_granted(struct quota_client *cl, uint64_t fh)
{
	return imap_put(&cl->subs, (int64_t)fh, 1);
}

int quota_sub_refused(int64_t uid)
{
	struct user_rate *u = user_rate(uid);
	long long now = (long long)mono_ms(), s = now / 1000;

	if (!u)
		return 1;
	u->used_ms = now;
	if (s != u->refused_s) {
		u->refused_s = s;
		u->refused = 0;
	}
	if (++u->refused <= refused_per_s)
		return 0;
	quota_kicks++;
	u->cooldown_ms = now + cooldown_ms;
	return 1;
}

int quota_connect_ok(int64_t uid)
{
	struct user_rate *u = user_rate(uid);
	long long now = (long long)mono_ms();

	if (!u)
		return 0;
	u->used_ms = now;
	if (u->cooldown_ms > now)
		return 0;
	if (!take(&u->connects, now, connect_interval_ms, connect_burst)) {
		quota_connects_refused++;
		return 0;
	}
	return 1;
}

void quota_unsub(struct quota_client *cl, const char *filter)
{
	imap_del(&cl->subs, key_of(filter));
}

static struct user_rate *user_rate(int64_t uid)
{
	int64_t *v = imap_get(&users, uid);
	struct user_rate *u;

	if (v)
		return (struct user_rate *)(intptr_t)*v;
	u = calloc(1, sizeof(*u));
	if (!u || imap_put(&users, uid, (int64_t)(intptr_t)u) < 0) {
		free(u);
		return NULL;
	}
	return u;
}

/* GCRA: one token every interval, at most burst in a row. */
static int take(struct bucket *b, long long now, long interval, long burst)
{
	long long tat = b->tat > now ? b->tat : now;

	if (tat + interval - now > (long long)interval * burst)
		return 0;
	b->tat = tat + interval;
	return 1;
}

/* The bucket of kind k of u, with its parameters; NULL for other kinds. */
static struct bucket *bucket_of(struct user_rate *u, enum topic_kind k, long *interval, long *burst)
{
	switch (k) {
	case TOPIC_CHAT:
		*interval = msg_interval_ms;
		*burst = msg_burst;
		return &u->chat;
	case TOPIC_TYPING:
		*interval = typing_interval_ms;
		*burst = typing_burst;
		return &u->typing;
	case TOPIC_SIGNAL:
		*interval = signal_interval_ms;
		*burst = signal_burst;
		return &u->signal;
	default:
		return NULL;
	}
}

int quota_publish_may(int64_t uid, enum topic_kind k)
{
	int64_t *v = imap_get(&users, uid);
	struct bucket *b;
	long interval, burst;
	long long now, tat;

	if (!v)
		return 1;
	b = bucket_of((struct user_rate *)(intptr_t)*v, k, &interval, &burst);
	if (!b)
		return 1;
	now = (long long)mono_ms();
	tat = b->tat > now ? b->tat : now;
	return tat + interval - now <= (long long)interval * burst;
}

int quota_publish_ok(int64_t uid, enum topic_kind k)
{
	struct user_rate *u;
	struct bucket *b;
	long long now = (long long)mono_ms();
	long interval, burst;
	int ok;

	if (k != TOPIC_CHAT && k != TOPIC_TYPING && k != TOPIC_SIGNAL)
		return 1;
	u = user_rate(uid);
	if (!u)
		return 0;
	u->used_ms = now;
	b = bucket_of(u, k, &interval, &burst);
	ok = take(b, now, interval, burst);
	if (ok && k == TOPIC_CHAT && u->pending++ == 0)
		users_pending++;
	if (!ok)
		quota_drops++;
	return ok;
}

int quota_chat_rules_ok(int64_t uid, int64_t ch, const void *payload, uint32_t len)
{
	struct modrule m;
	struct json_object *o = NULL, *id, *body;
	enum modrule_why why;
	long long left_ms;
	int ok = 0;

	if (acl_chat_rules(ch, uid, &m) < 0) {
		quota_limit_drops++; /* cannot tell: the plugin says no */
		goto out;
	}
	if (modrule_is_default(&m)) {
		ok = 1; /* nothing to apply, nothing parsed */
		goto out;
	}
	/* the ACL check validated the payload: id and body are there */
	o = jh_parse(payload, len);
	if (!o || !json_object_object_get_ex(o, "id", &id) ||
	    !json_object_object_get_ex(o, "body", &body)) {
		quota_limit_drops++;
		goto out;
	}
	why = modrule_body(&m, json_object_get_string(body),
			   (size_t)json_object_get_string_len(body));
	if (why != MODRULE_OK) {
		quota_limit_drops++;
		mosquitto_log_printf(MOSQ_LOG_DEBUG, "townhall: chat message of %lld refused: %s",
				     (long long)uid, modrule_why_text(why));
		goto out;
	}
	/* slow mode: one Redis round trip, only for members of a community
	 * that has it; the clock the REST route shares */
	if (m.slow_s > 0 &&
	    modrule_slow_take(ch, uid, m.slow_s, json_object_get_string(id), &left_ms) != 1) {
		quota_slow_drops++;
		mosquitto_log_printf(MOSQ_LOG_DEBUG,
				     "townhall: chat message of %lld refused: slow mode (%lld ms "
				     "left)",
				     (long long)uid, left_ms);
		goto out;
	}
	ok = 1;
out:
	json_object_put(o);
	return ok;
}

/* Books the user's MQTT chat publishes in the shared Redis bucket (force:
 * they were already let through) and takes back what Redis says is left,
 * which includes what the REST routes used.
 *
 * Why not rl_take() per publish: that is a Redis round trip (an EVAL, tens
 * of microseconds on loopback, up to TH_MQTT_LOOKUP_TIMEOUT_MS when Redis is
 * slow) on the broker's only thread for every chat message, where the local
 * bucket decides in well under a microsecond.  The price: REST and MQTT see
 * each other's use only every QUOTA_SYNC_MS, and a user idle over MQTT
 * starts from a full local bucket, so a user can exceed the shared budget by
 * at most one burst (30) per such window; the sustained rate stays 10/s
 * because every MQTT hit is booked in Redis, overdrawing it if need be. */
static void sync_user(int64_t uid, struct user_rate *u, long long now)
{
	char key[48];
	struct rl_state st;
	long n = u->pending > 0 ? u->pending : 1;
	int r;

	snprintf(key, sizeof(key), "th:rl:msg:%lld", (long long)uid);
	/* n = 1 without pending hits would take a token: only sync users
	 * who published */
	r = rl_take(key, msg_interval_ms, msg_burst, n, 1, &st);
	if (r < 0)
		return; /* Redis out: keep counting locally, book them later */
	u->pending = 0;
	users_pending--;
	/* st.count tokens are left (negative: overdrawn): the local bucket
	 * follows, so REST use since the last sync counts here too */
	u->chat.tat = now + (long long)(msg_burst - st.count) * msg_interval_ms;
}

static void sweep(long long now)
{
	/* collect first: deleting shifts entries of the table being walked */
	for (size_t i = 0; i < by_cid.cap; i++) {
		struct quota_client *cl;

		if (!by_cid.slots[i].key)
			continue;
		cl = (struct quota_client *)(intptr_t)by_cid.slots[i].val;
		if (cl->live || !cl->offline_ms || now - cl->offline_ms < session_ttl_s * 1000LL)
			continue;
		client_free(cl);
		imap_del(&by_cid, by_cid.slots[i].key);
		offline_count--;
		i--; /* the backward shift may have moved a later entry here */
	}
	for (size_t i = 0; i < users.cap; i++) {
		struct user_rate *u;

		if (!users.slots[i].key)
			continue;
		u = (struct user_rate *)(intptr_t)users.slots[i].val;
		if (u->pending || now - u->used_ms < 60000 || u->chat.tat > now ||
		    u->typing.tat > now || u->signal.tat > now || u->connects.tat > now ||
		    u->cooldown_ms > now)
			continue;
		free(u);
		imap_del(&users, users.slots[i].key);
		i--;
	}
}

static void quota_report(long long now);

void quota_tick(void)
{
	long long now = (long long)mono_ms();
	int synced = 0;

	if (users_pending > 0 && now - last_sync_ms >= QUOTA_SYNC_MS) {
		last_sync_ms = now;
		for (size_t i = 0; i < users.cap && synced < QUOTA_SYNC_MAX; i++) {
			struct user_rate *u;

			if (!users.slots[i].key)
				continue;
			u = (struct user_rate *)(intptr_t)users.slots[i].val;
			if (!u->pending)
				continue;
			sync_user(users.slots[i].key, u, now);
			synced++;
		}
	}
	if (now - last_sweep_ms >= QUOTA_SWEEP_MS) {
		last_sweep_ms = now;
		sweep(now);
	}
	quota_report(now);
}

/* The counters in the broker's log, at most every QUOTA_REPORT_MS and only
 * when one moved: what was refused (a drop is silent to an MQTT 3.1.1
 * client) is counted where an operator reads the broker. */
static void quota_report(long long now)
{
	static unsigned long seen[7];
	static long long last_ms;
	unsigned long cur[7] = {quota_drops,  quota_slow_drops, quota_limit_drops,
				quota_kicks,  quota_subs_full,  quota_connects_refused,
				msess_refused};

	if (now - last_ms < QUOTA_REPORT_MS || memcmp(cur, seen, sizeof(cur)) == 0)
		return;
	last_ms = now;
	memcpy(seen, cur, sizeof(seen));
	mosquitto_log_printf(MOSQ_LOG_NOTICE,
			     "townhall: refused so far: rate_drops=%lu slow_drops=%lu "
			     "limit_drops=%lu kicks=%lu subs_full=%lu connects=%lu sessions=%lu",
			     cur[0], cur[1], cur[2], cur[3], cur[4], cur[5], cur[6]);
}
