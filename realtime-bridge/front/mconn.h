/* mconn: the MQTT CONNECT packet a client sends first (3.1.1 section 3.1,
 * 5.0 section 3.1): what the front needs from it (version, keepalive, the
 * user id of the client id, the will) and the refusals it answers itself
 * with a CONNACK before any broker sees the packet.  Pure, no I/O. */
#ifndef TH_MCONN_H
#define TH_MCONN_H

#include <stddef.h>
#include <stdint.h>

struct mconn {
	int version;        /* 4 (3.1.1) or 5 */
	unsigned keepalive; /* seconds, 0 = none */
	const uint8_t *cid; /* client id, into the packet */
	size_t cid_len;
	int64_t uid; /* from "u<uid>-..." */
	int will;    /* a will is present */
	int will_retain;
	const uint8_t *will_topic, *will_payload;
	size_t will_topic_len, will_payload_len, will_props_len;
	int will_origin; /* MQTT 5: a will user property named TOPIC_ORIGIN_PROP */
};

enum mconn_result {
	MCONN_OK = 0,
	MCONN_MALFORMED,    /* not a CONNECT one can answer: closed without CONNACK */
	MCONN_BAD_PROTOCOL, /* another protocol name or level */
	MCONN_BAD_ID,       /* client id not u<digits>-... */
	MCONN_WILL_TOPIC,   /* a will on a topic this user may not publish */
	MCONN_WILL_RETAIN,  /* a retained will */
	MCONN_WILL_PAYLOAD, /* a will payload too long or invalid for its topic */
	MCONN_WILL_PROPS,   /* a will carrying the servers' own user property (topic.h) */
	MCONN_RESULTS
};

/* Parses the whole packet pkt[0..n), fixed header included.  MCONN_OK or
 * MCONN_BAD_ID (c filled but for the uid), or another failure (c partly
 * filled: version is set whenever the protocol level was read). */
enum mconn_result mconn_parse(const uint8_t *pkt, size_t n, struct mconn *c);

/* The will rules of API.md ("Limits every route and topic obeys"): the
 * topic is one the user may publish to (chat, typing, signal as oneself),
 * not retained, payload and will properties within 16 KiB and valid as that
 * topic's publish, no `th-edge` user property (the plugin refuses it on a
 * publish; 2.0.11 shows it no will's properties).  MCONN_OK when there is
 * no will. */
enum mconn_result mconn_will_check(const struct mconn *c);

/* The CONNACK refusing with r for the version: 4 or 5 bytes into out.
 * Returns the length. */
size_t mconn_connack(int version, enum mconn_result r, uint8_t out[5]);

/* The reason's name for logs and metrics. */
const char *mconn_result_name(enum mconn_result r);

#endif
