/* modrule: a community's chat rules — slow mode and content limits (API.md
 * v1.1 "Moderation"; issue 23 point 3) — decided the same way for a message
 * posted over REST (fcgi-apps/realtime/messages.c) and a chat publish over
 * MQTT (realtime-bridge/plugin/quota.c).
 *
 *   slow mode      members below moderator send one message per channel
 *                  per slow_s seconds (0: off, at most 86400);
 *   max_len        a message body of at most max_len code points (1..4000,
 *                  the global limit by default);
 *   links          0: no link in a body (http://, https://, www., any case).
 *
 * Moderators and above, and site admins (users.is_admin), are exempt from
 * all three; a DM channel has no rules.  The facts come from
 * communities.slow_mode_seconds, max_message_length and links_allowed
 * (migrations 0030, 0035), mirrored for the broker in th:community:<cid>
 * (lib/mirror.h).
 *
 * One clock for both paths: the last send of a user in a channel is the
 * Redis key th:slow:<channel>:<user> (its value the message id) with a TTL
 * of the window, taken with SET NX PX GET in one round trip, so alternating
 * REST and MQTT does not double anyone's rate.  The same id again inside the
 * window passes (a client's resend after a reconnect: the store keeps one). */
#ifndef TH_MODRULE_H
#define TH_MODRULE_H

#include <stddef.h>
#include <stdint.h>

#define MODRULE_SLOW_MAX 86400
#define MODRULE_LEN_MAX 4000

struct modrule {
	long slow_s;  /* 0: off */
	long max_len; /* code points */
	int links;    /* 1: links allowed */
};

/* No rules: what a DM channel and an unconfigured community have. */
void modrule_default(struct modrule *m);
/* 1 when m restricts nothing (no lookup of the sender's role is needed). */
int modrule_is_default(const struct modrule *m);

/* The rules packed in one integer (the broker's cache holds int64 values),
 * and back; unpack of a value pack never made gives the defaults. */
int64_t modrule_pack(const struct modrule *m);
void modrule_unpack(int64_t v, struct modrule *m);

enum modrule_why { MODRULE_OK = 0, MODRULE_TOO_LONG, MODRULE_LINK };

/* The content rules of m on body (n bytes of UTF-8) for a sender who is not
 * exempt. */
enum modrule_why modrule_body(const struct modrule *m, const char *body, size_t n);
/* A sentence for the client, and the field at fault is "body". */
const char *modrule_why_text(enum modrule_why w);

/* Slow mode: takes user uid's send in channel ch for m->slow_s seconds,
 * the message id msg_id its value.  1 taken (or the same id again), 0
 * refused (*left_ms: until the window ends, >= 1), -1 Redis cannot tell. */
int modrule_slow_take(int64_t ch, int64_t uid, long slow_s, const char *msg_id, long long *left_ms);

#endif
