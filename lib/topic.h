/* topic: parsing of Townhall's MQTT topics and filters, and the ACL decision
 * table of API.md — pure functions, no I/O, unit-tested on their own.
 *
 *   chat/<channel>/<sender>            typing/<channel>/<sender>
 *   presence/<community>/<user>        events/community/<community>
 *   signal/<call>/<to>/<from>          user/<user>/inbox
 *
 * Ids are positive decimal integers without sign or leading zeros.  In a
 * filter, '+' may stand only for the last level of chat, typing, presence and
 * signal; '#', '$share/...' and anything else are refused for users. */
#ifndef TH_TOPIC_H
#define TH_TOPIC_H

#include <stdint.h>

enum topic_kind {
	TOPIC_INVALID = 0,
	TOPIC_CHAT,
	TOPIC_TYPING,
	TOPIC_PRESENCE,
	TOPIC_EVENTS,
	TOPIC_SIGNAL,
	TOPIC_INBOX,
};

struct topic {
	enum topic_kind kind;
	int64_t id[3]; /* in topic order: chat (channel, sender), presence (community,
			  * user), events (community), signal (call, to, from), inbox (user) */
	int wild;      /* the last level is '+' (filters only) */
};

/* Parses a topic (is_filter 0) or a subscription filter (is_filter 1).
 * Returns the kind (TOPIC_INVALID for anything outside the table). */
enum topic_kind topic_parse(const char *s, int is_filter, struct topic *out);

/* The MQTT 5 user property the hub adds to a chat message that came in
 * through an edge's bridge (value: the edge's broker id, from the bridge's
 * client id "edge-<id>"), so th-bridge sends the `stored` receipt to that
 * edge alone: TOPIC_ORIGIN_PREFIX<id>/user/<sender>/inbox, which only that
 * edge's bridge imports (as user/<sender>/inbox).  A user may not set it. */
#define TOPIC_ORIGIN_PROP "th-edge"
#define TOPIC_ORIGIN_PREFIX "edge/"
#define TOPIC_ORIGIN_MAX 15 /* bytes of a broker id: [A-Za-z0-9_-] */

enum acl_access { ACL_READ = 1, ACL_WRITE = 2, ACL_SUBSCRIBE = 4, ACL_UNSUBSCRIBE = 8 };

/* What must hold for the caller (user uid) to be allowed. */
enum acl_need {
	NEED_DENY = 0,
	NEED_ALLOW,
	NEED_CHANNEL_MEMBER,   /* x: channel: member of the channel's community, or of the DM */
	NEED_CHANNEL_WRITER,   /* x: channel: the same, and (a DM) not blocked by another member */
	NEED_COMMUNITY_MEMBER, /* x: community */
	NEED_COMMUNITY_READER, /* x: community: public, or a member */
	NEED_CALL_MEMBER,      /* x: call: uid is a participant */
	NEED_CALL_PAIR,        /* x: call: uid and y are both participants */
};

struct acl_decision {
	enum acl_need need;
	int64_t x, y;
};

/* The decision for a parsed topic, an access kind and a user. */
struct acl_decision topic_decide(const struct topic *t, int access, int64_t uid);

/* Chat payload check at publish time: JSON object, "id" a UUID string,
 * "body" a string of 1..4000 characters, optional "reply_to" (UUID string or
 * null), at most 16 KiB.  Returns 0 when valid, else -1 and a reason. */
int topic_chat_payload_ok(const void *payload, uint32_t len, const char **why);

/* 1 when s is a UUID in 8-4-4-4-12 hex form. */
int topic_is_uuid(const char *s);

/* 1 when s is a broker id fit for TOPIC_ORIGIN_PROP and a topic level:
 * 1..TOPIC_ORIGIN_MAX bytes of [A-Za-z0-9_-]. */
int topic_origin_ok(const char *s);

#endif
