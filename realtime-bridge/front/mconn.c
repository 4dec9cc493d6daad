/* mconn: see mconn.h. */
#include "mconn.h"

#include <string.h>

#include "peek.h"
#include "topic.h"

/* the plugin's publish limits for what is not chat (plugin.c publish_ok):
 * typing at most 1 KiB, signal at most 16 KiB; the will payload and its
 * MQTT 5 properties at most the API's 16 KiB MQTT payload */
#define WILL_MAX 16384
#define TYPING_MAX 1024
#define SIGNAL_MAX 16384

struct rd {
	const uint8_t *p;
	size_t n;
};

static int rd_u8(struct rd *r, unsigned *v)
{
	if (r->n < 1)
		return -1;
	*v = r->p[0];
	r->p++;
	r->n--;
	return 0;
}

static int rd_u16(struct rd *r, unsigned *v)
{
	if (r->n < 2)
		return -1;
	*v = (unsigned)r->p[0] << 8 | r->p[1];
	r->p += 2;
	r->n -= 2;
	return 0;
}

/* a 2-byte length and that many bytes */
static int rd_bin(struct rd *r, const uint8_t **p, size_t *len)
{
	unsigned l;

	if (rd_u16(r, &l) < 0 || r->n < l)
		return -1;
	*p = r->p;
	*len = l;
	r->p += l;
	r->n -= l;
	return 0;
}

/* MQTT 5 properties: a varint length and that many bytes, skipped; body
 * (when not NULL) gets the bytes after the length */
static int rd_props(struct rd *r, size_t *len, struct rd *body)
{
	uint32_t l;
	int k = peek_varint(r->p, r->n, &l);

	if (k <= 0 || r->n - (size_t)k < l)
		return -1;
	r->p += k;
	r->n -= (size_t)k;
	if (body)
		*body = (struct rd){r->p, l};
	r->p += l;
	r->n -= l;
	if (len)
		*len = (size_t)k + l;
	return 0;
}

/* The will properties of MQTT 5 (section 3.1.3.2): 1 when a user property
 * is named name, 0 when none is, -1 when they are not well formed. */
static int will_props_name(struct rd r, const char *name)
{
	size_t nl = strlen(name);
	int found = 0;

	while (r.n) {
		unsigned id, v;
		const uint8_t *s, *val;
		size_t sl, vl;

		if (rd_u8(&r, &id) < 0)
			return -1;
		switch (id) {
		case 0x01: /* payload format indicator */
			if (rd_u8(&r, &v) < 0)
				return -1;
			break;
		case 0x02: /* message expiry interval */
		case 0x18: /* will delay interval */
			if (rd_u16(&r, &v) < 0 || rd_u16(&r, &v) < 0)
				return -1;
			break;
		case 0x03: /* content type */
		case 0x08: /* response topic */
		case 0x09: /* correlation data */
			if (rd_bin(&r, &s, &sl) < 0)
				return -1;
			break;
		case 0x26: /* user property: a name and a value */
			if (rd_bin(&r, &s, &sl) < 0 || rd_bin(&r, &val, &vl) < 0)
				return -1;
			found |= sl == nl && memcmp(s, name, nl) == 0;
			break;
		default:
			return -1;
		}
	}
	return found;
}

/* "u<digits>-": digits without leading zero, at most 18 of them */
static int64_t cid_uid(const uint8_t *s, size_t n)
{
	int64_t v = 0;
	size_t i;

	if (n < 3 || s[0] != 'u' || s[1] < '1' || s[1] > '9')
		return -1;
	for (i = 1; i < n && i <= 18 && s[i] >= '0' && s[i] <= '9'; i++)
		v = v * 10 + (s[i] - '0');
	if (i >= n || s[i] != '-')
		return -1;
	return v;
}

enum mconn_result mconn_parse(const uint8_t *pkt, size_t n, struct mconn *c)
{
	struct rd r;
	const uint8_t *name;
	size_t name_len, dummy;
	unsigned level, flags, ka;
	uint32_t rl;
	int k;

	memset(c, 0, sizeof(*c));
	if (n < 2 || pkt[0] != 0x10)
		return MCONN_MALFORMED;
	k = peek_varint(pkt + 1, n - 1, &rl);
	if (k <= 0 || (size_t)k + 1 + rl != n)
		return MCONN_MALFORMED;
	r = (struct rd){pkt + 1 + k, rl};
	if (rd_bin(&r, &name, &name_len) < 0 || rd_u8(&r, &level) < 0)
		return MCONN_MALFORMED;
	if (name_len != 4 || memcmp(name, "MQTT", 4) != 0 || (level != 4 && level != 5)) {
		c->version = level == 5 ? 5 : 4;
		return MCONN_BAD_PROTOCOL;
	}
	c->version = (int)level;
	if (rd_u8(&r, &flags) < 0 || rd_u16(&r, &ka) < 0)
		return MCONN_MALFORMED;
	c->keepalive = ka;
	/* reserved bit; will QoS 3; will QoS or retain without a will */
	if ((flags & 0x01) || ((flags >> 3) & 3) == 3 || (!(flags & 0x04) && (flags & 0x38)))
		return MCONN_MALFORMED;
	if (level == 5 && rd_props(&r, NULL, NULL) < 0)
		return MCONN_MALFORMED;
	if (rd_bin(&r, &c->cid, &c->cid_len) < 0)
		return MCONN_MALFORMED;
	if (flags & 0x04) {
		struct rd props;

		c->will = 1;
		c->will_retain = (flags >> 5) & 1;
		if (level == 5 &&
		    (rd_props(&r, &c->will_props_len, &props) < 0 ||
		     (c->will_origin = will_props_name(props, TOPIC_ORIGIN_PROP)) < 0))
			return MCONN_MALFORMED;
		if (rd_bin(&r, &c->will_topic, &c->will_topic_len) < 0 ||
		    rd_bin(&r, &c->will_payload, &c->will_payload_len) < 0)
			return MCONN_MALFORMED;
	}
	/* username and password: the broker checks them */
	if ((flags & 0x80) && rd_bin(&r, &name, &dummy) < 0)
		return MCONN_MALFORMED;
	if ((flags & 0x40) && rd_bin(&r, &name, &dummy) < 0)
		return MCONN_MALFORMED;
	c->uid = cid_uid(c->cid, c->cid_len);
	if (c->uid <= 0) {
		c->uid = 0;
		return MCONN_BAD_ID;
	}
	return MCONN_OK;
}

enum mconn_result mconn_will_check(const struct mconn *c)
{
	char topic[260];
	struct topic t;
	struct acl_decision d;
	const char *why;
	enum topic_kind k;

	if (!c->will)
		return MCONN_OK;
	/* a longer topic is no topic of the table (topic_parse: at most 256) */
	if (c->will_topic_len >= sizeof(topic) || memchr(c->will_topic, 0, c->will_topic_len))
		return MCONN_WILL_TOPIC;
	memcpy(topic, c->will_topic, c->will_topic_len);
	topic[c->will_topic_len] = '\0';
	k = topic_parse(topic, 0, &t);
	if (k != TOPIC_CHAT && k != TOPIC_TYPING && k != TOPIC_SIGNAL)
		return MCONN_WILL_TOPIC;
	d = topic_decide(&t, ACL_WRITE, c->uid);
	if (d.need == NEED_DENY)
		return MCONN_WILL_TOPIC;
	if (c->will_retain)
		return MCONN_WILL_RETAIN;
	if (c->will_origin)
		return MCONN_WILL_PROPS;
	if (c->will_payload_len + c->will_props_len > WILL_MAX)
		return MCONN_WILL_PAYLOAD;
	if (k == TOPIC_CHAT &&
	    topic_chat_payload_ok(c->will_payload, (uint32_t)c->will_payload_len, &why) < 0)
		return MCONN_WILL_PAYLOAD;
	if ((k == TOPIC_TYPING && c->will_payload_len > TYPING_MAX) ||
	    (k == TOPIC_SIGNAL && c->will_payload_len > SIGNAL_MAX))
		return MCONN_WILL_PAYLOAD;
	return MCONN_OK;
}

static const uint8_t codes[MCONN_RESULTS][2] = {
	/* 3.1.1, 5 */
	[MCONN_OK] = {0x00, 0x00},           [MCONN_MALFORMED] = {0x02, 0x81},
	[MCONN_BAD_PROTOCOL] = {0x01, 0x84}, [MCONN_BAD_ID] = {0x02, 0x85},
	[MCONN_WILL_TOPIC] = {0x05, 0x90},   [MCONN_WILL_RETAIN] = {0x05, 0x9A},
	[MCONN_WILL_PAYLOAD] = {0x05, 0x99}, [MCONN_WILL_PROPS] = {0x05, 0x87},
};

static size_t connack(int version, uint8_t code, uint8_t out[5])
{
	out[0] = 0x20;
	out[2] = 0x00; /* no session present */
	out[3] = code;
	if (version == 5) {
		out[1] = 3;
		out[4] = 0; /* no properties */
		return 5;
	}
	out[1] = 2;
	return 4;
}

size_t mconn_connack(int version, enum mconn_result r, uint8_t out[5])
{
	return connack(version, codes[r < MCONN_RESULTS ? r : MCONN_MALFORMED][version == 5], out);
}

const char *mconn_result_name(enum mconn_result r)
{
	static const char *const names[MCONN_RESULTS] = {
		"ok",         "malformed_connect", "bad_protocol", "bad_client_id",
		"will_topic", "will_retain",       "will_payload", "will_props",
	};

	return r < MCONN_RESULTS ? names[r] : "?";
}
