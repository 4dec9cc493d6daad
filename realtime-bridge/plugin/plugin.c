/* townhall-plugin: Mosquitto 2.0 plugin (API v5) — JWT auth, the topic ACL
 * of API.md, chat payload checks, presence, and closing connections whose
 * token expired or whose session was revoked.
 *
 * Shaped like Mosquitto's plugins/examples: declare the version, register
 * callbacks in init, keep the state in one struct.  Everything runs on the
 * broker's single thread, so nothing here may block for long: Redis lookups
 * use a short timeout (TH_MQTT_LOOKUP_TIMEOUT_MS) and their answers are
 * cached (acl.c). */
#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>
#include <mqtt_protocol.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "acl.h"
#include "cache.h"
#include "config.h"
#include "conns.h"
#include "db.h"
#include "quota.h"
#include "log.h"
#include "msess.h"
#include "mwatch.h"
#include "presence.h"
#include "revoke.h"
#include "tokcache.h"
#include "token.h"
#include "topic.h"

#define SERVICE_USER "th-service"
#define SECRET_MAX 256

struct plugin_state {
	mosquitto_plugin_id_t *id;
	char secret[SECRET_MAX]; /* the service account's password */
	size_t secret_len;
	long max_conns_per_user; /* TH_MQTT_MAX_CONNS_PER_USER */
	long max_sessions;       /* TH_MQTT_MAX_SESSIONS_PER_USER (msess.h) */
	long max_message;        /* TH_MQTT_MAX_MESSAGE: payload and user properties */
	long max_packet;         /* TH_MQTT_MAX_PACKET: bytes of topic, payload and
				    * user properties of one publish */
	char broker_id[PRESENCE_BROKER_ID_MAX + 1]; /* TH_BROKER_ID (plugin_opt_broker_id) */
};

static struct plugin_state state;

int mosquitto_plugin_version(int supported_version_count, const int *supported_versions)
{
	for (int i = 0; i < supported_version_count; i++)
		if (supported_versions[i] == 5)
			return 5;
	return -1;
}

/* Our lib logs through the broker's log. */
static void log_to_broker(int level, const char *line)
{
	static const int map[] = {MOSQ_LOG_DEBUG, MOSQ_LOG_INFO, MOSQ_LOG_WARNING, MOSQ_LOG_ERR};

	mosquitto_log_printf(map[level >= 0 && level <= 3 ? level : 3], "townhall: %s", line);
}

static int is_service(struct mosquitto *client)
{
	const char *u = mosquitto_client_username(client);

	return u && strcmp(u, SERVICE_USER) == 0;
}

/* The user id the plugin set as this connection's username. */
static int64_t user_of(struct mosquitto *client)
{
	const char *u = mosquitto_client_username(client);
	long long v;

	if (!u || cfg_parse_int(u, 1, INT64_MAX, &v) < 0)
		return 0;
	return v;
}

/* A client id fit for a log line: the client chose it (after the u<id>-
 * prefix), so it is cut at 64 bytes and anything but printable ASCII is
 * replaced. */
static const char *log_id(const char *cid, char out[65])
{
	size_t i;

	for (i = 0; cid && cid[i] && i < 64; i++)
		out[i] = cid[i] > 0x20 && cid[i] < 0x7f ? cid[i] : '?';
	out[i] = '\0';
	return out;
}

/* CONNECT.  The will: 2.0.11 reads it before calling BASIC_AUTH but gives
 * plugins no way to see it (no field in the event, no accessor, struct
 * mosquitto is opaque), so it cannot be refused here.  The broker runs the
 * ACL check (MOSQ_ACL_WRITE, with topic, payload and retain) when it is about
 * to send the will, and acl_publish applies every publish rule there (the
 * rate, topic ACL, author, payload validation, no retain on user topics, the
 * community's chat rules): a will that would not pass as a publish is never
 * stored or delivered. */
static int on_basic_auth(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_basic_auth *ed = event_data;
	const char *cid = mosquitto_client_id(ed->client);
	struct token_claims c;
	char prefix[32], uid[24], safe[65];
	size_t plen;
	enum th_err e;

	(void)event;
	(void)userdata;
	if (!ed->password || !cid)
		return MOSQ_ERR_AUTH;
	if (ed->username && strcmp(ed->username, SERVICE_USER) == 0) {
		size_t n = strlen(ed->password);

		if (state.secret_len && n == state.secret_len &&
		    sodium_memcmp(ed->password, state.secret, n) == 0)
			return MOSQ_ERR_SUCCESS;
		mosquitto_log_printf(MOSQ_LOG_WARNING, "townhall: bad service credential");
		return MOSQ_ERR_AUTH;
	}
	/* a reconnect with a token verified before costs a SHA-256 here, not
	 * an ES256 verify; revocation is checked either way */
	e = tokcache_verify(ed->password, strnlen(ed->password, TOKEN_MAX_LEN + 1), &c);
	if (e != TH_OK)
		return MOSQ_ERR_AUTH;
	/* a client id names its user: nobody connects as somebody else */
	plen = (size_t)snprintf(prefix, sizeof(prefix), "u%lld-", (long long)c.user_id);
	if (strncmp(cid, prefix, plen) != 0)
		return MOSQ_ERR_AUTH;
	if (!quota_connect_ok(c.user_id)) {
		mosquitto_log_printf(MOSQ_LOG_DEBUG,
				     "townhall: user %lld cooling down or over its connection "
				     "rate; "
				     "%s refused",
				     (long long)c.user_id, log_id(cid, safe));
		return MOSQ_ERR_AUTH;
	}
	snprintf(uid, sizeof(uid), "%lld", (long long)c.user_id);
	if (mosquitto_set_username(ed->client, uid) != MOSQ_ERR_SUCCESS)
		return MOSQ_ERR_AUTH;
	/* a new session past the user's cap (msess.h): before it is counted */
	if (!msess_admit(ed->client, c.user_id, cid)) {
		mosquitto_log_printf(MOSQ_LOG_NOTICE,
				     "townhall: user %lld keeps %ld sessions; %s refused",
				     (long long)c.user_id, state.max_sessions, log_id(cid, safe));
		return MOSQ_ERR_AUTH;
	}
	/* the 21st connection of a user over every broker is refused (CONNACK
	 * 0x87: 2.0.11 maps every BASIC_AUTH refusal to it); taking over one's
	 * own client id replaces a connection and is not a new one */
	if (conns_add(ed->client, cid, c.user_id, c.session_id, c.expires_at,
		      quota_takeover(ed->client) ? 0 : state.max_conns_per_user) < 0) {
		mosquitto_log_printf(MOSQ_LOG_NOTICE,
				     "townhall: %s: user %lld has %ld connections (or no memory); "
				     "%s refused",
				     state.broker_id, (long long)c.user_id,
				     state.max_conns_per_user, log_id(cid, safe));
		return MOSQ_ERR_AUTH;
	}
	quota_connect(ed->client);
	return MOSQ_ERR_SUCCESS;
}

/* Closes a client that keeps sending refused filters, in the middle of its
 * SUBSCRIBE: an MQTT 5 client gets DISCONNECT 0x98 (administrative action),
 * and the error returned from the ACL check makes handle__subscribe stop at
 * this filter instead of checking the thousands after it. */
static int kick(struct mosquitto *client)
{
	const char *cid = mosquitto_client_id(client);
	char safe[65];

	mosquitto_log_printf(MOSQ_LOG_NOTICE, "townhall: closing %s (too many refused filters)",
			     log_id(cid, safe));
	if (cid)
		mosquitto_kick_client_by_clientid(cid, false);
	return MOSQ_ERR_ADMINISTRATIVE_ACTION;
}

/* A decision that needs a lookup (a membership, a call) is taken only while
 * the user's lookup budget lasts, and its Redis or PostgreSQL lookups are
 * booked against it: a stream of SUBSCRIBEs or publishes to guessed ids is
 * refused in O(1) once it is spent.  1 when allowed. */
static int allowed_on_budget(const struct acl_decision *d, int64_t uid)
{
	unsigned long misses;
	int ok;

	if (d->need != NEED_DENY && d->need != NEED_ALLOW && !quota_lookup_ok(uid))
		return 0;
	misses = acl_misses;
	ok = acl_allowed(d, uid);
	quota_lookup_spent(uid, acl_misses - misses);
	return ok;
}

/* One filter of a SUBSCRIBE (2.0.11 has no SUBSCRIBE event: the ACL check
 * runs per filter, before the broker adds it).  The count and the lookup
 * budget are checked first, in O(1) and without Redis. */
static int acl_subscribe(struct mosquitto *client, const char *filter, int64_t uid)
{
	struct quota_client *cl = quota_client(client);
	struct topic t;
	struct acl_decision d;
	uint64_t fh;

	if (!cl)
		return MOSQ_ERR_ACL_DENIED;
	switch (quota_sub_admit(cl, client, uid, filter, &fh)) {
	case QUOTA_SUB_KICK:
		return kick(client);
	case QUOTA_SUB_FULL:
		return MOSQ_ERR_ACL_DENIED;
	default:
		break;
	}
	topic_parse(filter, 1, &t);
	d = topic_decide(&t, ACL_SUBSCRIBE, uid);
	if (allowed_on_budget(&d, uid) && quota_sub_granted(cl, fh) == 0)
		return MOSQ_ERR_SUCCESS;
	return quota_sub_refused(uid) ? kick(client) : MOSQ_ERR_ACL_DENIED;
}

/* The checks of a publish on what the ACL check sees of it (topic, payload,
 * retain), without lookups. */
static int publish_ok(const struct topic *t, const void *payload, uint32_t len, int retain)
{
	const char *why;

	/* user topics are live signals: nothing retained there */
	if (retain && (t->kind == TOPIC_CHAT || t->kind == TOPIC_TYPING || t->kind == TOPIC_SIGNAL))
		return 0;
	if (t->kind == TOPIC_CHAT && topic_chat_payload_ok(payload, len, &why) < 0) {
		mosquitto_log_printf(MOSQ_LOG_DEBUG, "townhall: chat message refused: %s", why);
		return 0;
	}
	if ((t->kind == TOPIC_TYPING && len > 1024) || (t->kind == TOPIC_SIGNAL && len > 16384))
		return 0;
	return 1;
}

/* A PUBLISH, or a will 2.0.11 is about to send: it checks a will only here
 * (on_basic_auth), never with a MESSAGE event, so every rule of a publish
 * that this event can see is applied here and not in on_message, and a will
 * pays like a publish.  In order: over the rate, dropped in O(1) before the
 * payload is parsed; the payload; the topic ACL, whose lookups (Redis, or
 * PostgreSQL while the mirror is away: on this thread) come from the user's
 * lookup budget as a SUBSCRIBE's do, so a stream of publishes to guessed
 * channel or call ids is refused without a lookup once it is spent; then
 * the token is taken (a refused publish takes none: the message budget is
 * shared with REST, and a client re-sending messages it may no longer send
 * must not use it up), and for chat the community's rules (slow mode,
 * content limits).  Slow mode's clock starts here, so a chat publish that
 * on_message then refuses (user properties over the size, a `th-edge` of
 * the user's own) still counts as the member's message for it: only a
 * client that breaks those rules pays that. */
static int acl_publish(const struct mosquitto_evt_acl_check *ed, const struct topic *t, int64_t uid)
{
	struct acl_decision d;

	if (!quota_publish_may(uid, t->kind) ||
	    !publish_ok(t, ed->payload, ed->payloadlen, ed->retain))
		return MOSQ_ERR_ACL_DENIED;
	d = topic_decide(t, ACL_WRITE, uid);
	if (!allowed_on_budget(&d, uid))
		return MOSQ_ERR_ACL_DENIED;
	if (!quota_publish_ok(uid, t->kind))
		return MOSQ_ERR_ACL_DENIED;
	if (t->kind == TOPIC_CHAT &&
	    !quota_chat_rules_ok(uid, t->id[0], ed->payload, ed->payloadlen))
		return MOSQ_ERR_ACL_DENIED;
	return MOSQ_ERR_SUCCESS;
}

/* '$share/<group>/<filter>' and '#' are for the service account only;
 * topic_parse refuses them for users by construction. */
static int on_acl_check(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_acl_check *ed = event_data;
	struct topic t;
	struct acl_decision d;
	int64_t uid;

	(void)event;
	(void)userdata;
	if (is_service(ed->client))
		return MOSQ_ERR_SUCCESS;
	uid = user_of(ed->client);
	if (uid <= 0 || !ed->topic)
		return MOSQ_ERR_ACL_DENIED;
	switch (ed->access) {
	case MOSQ_ACL_SUBSCRIBE:
		return acl_subscribe(ed->client, ed->topic, uid);
	case MOSQ_ACL_UNSUBSCRIBE: {
		struct quota_client *cl = quota_client(ed->client);

		if (cl)
			quota_unsub(cl, ed->topic);
		return MOSQ_ERR_SUCCESS;
	}
	case MOSQ_ACL_READ:
		/* nothing is queued for a user's offline session: their
		 * history comes from the REST API, so an offline user costs
		 * the broker no queue */
		if (!conns_is_live(ed->client))
			return MOSQ_ERR_ACL_DENIED;
		break;
	default:
		break;
	}
	topic_parse(ed->topic, 0, &t);
	if (ed->access == MOSQ_ACL_WRITE)
		return acl_publish(ed, &t, uid);
	d = topic_decide(&t, ed->access, uid);
	return acl_allowed(&d, uid) ? MOSQ_ERR_SUCCESS : MOSQ_ERR_ACL_DENIED;
}

/* One walk over a message's user properties: their bytes into *len (when
 * not NULL); 1 when one of them is the origin stamp (TOPIC_ORIGIN_PROP). */
static int user_props_scan(const mosquitto_property *props, size_t *len)
{
	size_t n = 0;
	int origin = 0;

	for (const mosquitto_property *p = props; p; p = mosquitto_property_next(p)) {
		char *name = NULL, *value = NULL;

		if (mosquitto_property_identifier(p) != MQTT_PROP_USER_PROPERTY ||
		    mosquitto_property_read_string_pair(p, MQTT_PROP_USER_PROPERTY, &name, &value,
							false) == NULL)
			continue;
		n += strlen(name) + strlen(value) + 4;
		origin |= strcmp(name, TOPIC_ORIGIN_PROP) == 0;
		free(name);
		free(value);
	}
	if (len)
		*len = n;
	return origin;
}

/* A chat message the service account forwards from an edge (the edge's
 * bridge connects as "edge-<id>", edge-bridge.conf.in): the edge it came
 * from, as a user property th-bridge reads to send the receipt there only
 * (topic.h).  Users cannot set the property (on_message refuses it), so
 * one that is there came from another hub's stamp: left as it is. */
static void origin_stamp(struct mosquitto_evt_message *ed)
{
	const char *id = mosquitto_client_id(ed->client);

	if (!id || strncmp(id, "edge-", 5) != 0 || strncmp(ed->topic, "chat/", 5) != 0 ||
	    !topic_origin_ok(id + 5) || user_props_scan(ed->properties, NULL))
		return;
	id += 5;
	/* appended to the stored message's own list, which the broker frees;
	 * out of memory: no stamp, the receipt goes to every edge as before */
	(void)mosquitto_property_add_string_pair(&ed->properties, MQTT_PROP_USER_PROPERTY,
						 TOPIC_ORIGIN_PROP, id);
}

/* After the ACL check (acl_publish: the rate, the ACL, the chat rules), for
 * PUBLISH only: what the ACL check does not see, the user properties.
 * message_size_limit counts only the payload, so user properties, which
 * every subscriber receives too, count against the same 16 KiB here
 * (TH_MQTT_MAX_MESSAGE); and the whole against the packet limit, which
 * 2.0.11 does not apply to WebSocket clients. */
static int on_message(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_message *ed = event_data;
	size_t props;
	int64_t uid;

	(void)event;
	(void)userdata;
	if (!ed->client || !ed->topic)
		return MOSQ_ERR_SUCCESS;
	if (is_service(ed->client)) {
		origin_stamp(ed);
		return MOSQ_ERR_SUCCESS;
	}
	uid = user_of(ed->client);
	/* the hub's word about where a message came in: never a user's */
	if (user_props_scan(ed->properties, &props))
		return MOSQ_ERR_ACL_DENIED;
	if (ed->payloadlen + props > (size_t)state.max_message ||
	    strlen(ed->topic) + ed->payloadlen + props > (size_t)state.max_packet)
		return MOSQ_ERR_ACL_DENIED;
	return uid > 0 ? MOSQ_ERR_SUCCESS : MOSQ_ERR_ACL_DENIED;
}

static int on_tick(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_tick *ed = event_data;

	(void)event;
	(void)userdata;
	(void)ed; /* 2.0.11 leaves now_s at 0: take the time ourselves */
	conns_tick(time(NULL));
	quota_tick();
	mwatch_tick();
	return MOSQ_ERR_SUCCESS;
}

static int on_disconnect(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_disconnect *ed = event_data;

	(void)event;
	(void)userdata;
	conns_remove(ed->client);
	msess_left(ed->client, user_of(ed->client));
	/* MQTT 3.1.1 clean session: the broker drops the subscriptions now;
	 * an MQTT 5 session may outlive the connection (its expiry interval
	 * is not visible to plugins in 2.0.11), so its count is kept */
	quota_disconnect(ed->client, mosquitto_client_protocol_version(ed->client) != 5 &&
					     mosquitto_client_clean_session(ed->client));
	return MOSQ_ERR_SUCCESS;
}

/* plugin_opt_x_y v: read as TH_X_Y, so the plugin takes its settings from
 * the same names as the apps. */
static void options_to_env(struct mosquitto_opt *opts, int n)
{
	char name[96];

	for (int i = 0; i < n; i++) {
		size_t k = 0;

		k += (size_t)snprintf(name, sizeof(name), "TH_");
		for (const char *p = opts[i].key; *p && k + 1 < sizeof(name); p++)
			name[k++] = (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
		name[k] = '\0';
		setenv(name, opts[i].value, 1);
	}
}

static int read_secret(void)
{
	const char *path = cfg_str("TH_MQTT_SERVICE_SECRET_FILE", NULL);
	FILE *f;
	size_t n;

	if (!path)
		return 0; /* no service account configured */
	f = fopen(path, "r");
	if (!f) {
		mosquitto_log_printf(MOSQ_LOG_ERR, "townhall: cannot read %s", path);
		return -1;
	}
	n = fread(state.secret, 1, sizeof(state.secret) - 1, f);
	fclose(f);
	while (n && (state.secret[n - 1] == '\n' || state.secret[n - 1] == '\r'))
		n--;
	state.secret[n] = '\0';
	state.secret_len = n;
	return n >= 16 ? 0 : -1;
}

int mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **userdata,
			  struct mosquitto_opt *opts, int opt_count)
{
	const char *pg;

	state.id = identifier;
	*userdata = &state;
	options_to_env(opts, opt_count);
	log_init("mqtt");
	log_set_sink(log_to_broker);
	if (sodium_init() < 0 || read_secret() < 0)
		return MOSQ_ERR_UNKNOWN;
	pg = cfg_str("TH_DB_CONNINFO", NULL);
	/* PostgreSQL is only the revocation fallback here: a short timeout */
	if (pg && db_init(pg, NULL, 200) < 0)
		return MOSQ_ERR_UNKNOWN;
	/* TCP only: the broker's user may not reach the stack's socket */
	if (cache_init_env((long)cfg_int("TH_MQTT_LOOKUP_TIMEOUT_MS", 50, 1, 5000), 0) < 0)
		return MOSQ_ERR_UNKNOWN;
	if (token_init() < 0) {
		mosquitto_log_printf(MOSQ_LOG_ERR, "townhall: token setup failed (see stderr)");
		return MOSQ_ERR_UNKNOWN;
	}
	acl_init((long)cfg_int("TH_MQTT_ACL_TTL_MS", 5000, 1, 5000),
		 (long)cfg_int("TH_MQTT_ACL_GEN_TTL_S", 600, 1, 3600));
	state.max_conns_per_user = (long)cfg_int("TH_MQTT_MAX_CONNS_PER_USER", 20, 1, 100000);
	state.max_sessions = (long)cfg_int("TH_MQTT_MAX_SESSIONS_PER_USER", 10, 1, 100000);
	/* as persistent_client_expiration (conf/mosquitto/broker.conf.in) */
	msess_init(state.max_sessions,
		   (long)cfg_int("TH_MQTT_SESSION_KEEP_S", 86400, 60, 31536000));
	state.max_packet = (long)cfg_int("TH_MQTT_MAX_PACKET", 65536, 1024, 268435455);
	state.max_message = (long)cfg_int("TH_MQTT_MAX_MESSAGE", 16384, 1024, 268435455);
	snprintf(state.broker_id, sizeof(state.broker_id), "%s", cfg_str("TH_BROKER_ID", "b0"));
	if (tokcache_init((size_t)cfg_int("TH_MQTT_TOKEN_CACHE", 65536, 4, 1 << 22), revoke_check) <
	    0)
		return MOSQ_ERR_NOMEM;
	if (conns_init(cfg_str("TH_BROKER_ID", "b0"),
		       (long)cfg_int("TH_MQTT_PRESENCE_LEASE_MS", 10000, 200, 600000),
		       (long)cfg_int("TH_MQTT_PRESENCE_GRACE_MS", 2000, 0, 60000)) < 0 ||
	    quota_init() < 0)
		return MOSQ_ERR_UNKNOWN;
	mwatch_init(cfg_str("TH_MIRROR_REBUILD_CMD", NULL));
	if (mosquitto_callback_register(identifier, MOSQ_EVT_BASIC_AUTH, on_basic_auth, NULL,
					NULL) ||
	    mosquitto_callback_register(identifier, MOSQ_EVT_ACL_CHECK, on_acl_check, NULL, NULL) ||
	    mosquitto_callback_register(identifier, MOSQ_EVT_MESSAGE, on_message, NULL, NULL) ||
	    mosquitto_callback_register(identifier, MOSQ_EVT_TICK, on_tick, NULL, NULL) ||
	    mosquitto_callback_register(identifier, MOSQ_EVT_DISCONNECT, on_disconnect, NULL, NULL))
		return MOSQ_ERR_UNKNOWN;
	mosquitto_log_printf(MOSQ_LOG_INFO, "townhall: plugin ready on broker %s (kid %s)",
			     state.broker_id, token_kid());
	return MOSQ_ERR_SUCCESS;
}

int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *opts, int opt_count)
{
	(void)userdata;
	(void)opts;
	(void)opt_count;
	mosquitto_callback_unregister(state.id, MOSQ_EVT_BASIC_AUTH, on_basic_auth, NULL);
	mosquitto_callback_unregister(state.id, MOSQ_EVT_ACL_CHECK, on_acl_check, NULL);
	mosquitto_callback_unregister(state.id, MOSQ_EVT_MESSAGE, on_message, NULL);
	mosquitto_callback_unregister(state.id, MOSQ_EVT_TICK, on_tick, NULL);
	mosquitto_callback_unregister(state.id, MOSQ_EVT_DISCONNECT, on_disconnect, NULL);
	conns_close();
	tokcache_close();
	quota_close();
	mwatch_close();
	acl_close();
	token_close();
	cache_close();
	db_close();
	sodium_memzero(state.secret, sizeof(state.secret));
	return MOSQ_ERR_SUCCESS;
}
