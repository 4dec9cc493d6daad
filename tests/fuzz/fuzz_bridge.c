/* fuzz_bridge: the bridge's validation of chat publishes and the array
 * literals it sends to PostgreSQL (realtime-bridge/bridge/store.c).
 *
 * Input: the topic, NUL, then payloads separated by NUL bytes (a payload
 * with a NUL in it is refused anyway), each offered to store_accept() as
 * the next message of one batch.  Checks: only chat/<channel>/<sender>
 * topics and valid payloads are queued, with what the payload said; each
 * column's array literal parses back (as PostgreSQL's array_in reads
 * quoted elements) to exactly the queued values, so no body can shift,
 * split or inject an element. */
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "bridge.h"
#include "fuzz.h"
#include "jhcore.h"
#include "topic.h"

struct bridge_stats bstats; /* main.c's; the counters are off (no metrics file) */

/* relay.c's (not linked here: it needs the bridge's loop): store.c tells it
 * each packet id a receipt gets; the fuzzer publishes nothing */
void relay_mid_issued(int mid)
{
	(void)mid;
}

#define MAX_MSGS 8

/* Element k of a literal made of quoted elements and NULLs, unescaped into
 * out (malloc'd); *is_null for NULL.  -1 when malformed. */
static int array_elem(const char *lit, size_t k, char **out, int *is_null)
{
	const char *p = lit;
	size_t i = 0;

	if (*p++ != '{')
		return -1;
	if (*p == '}')
		return -1; /* empty: no element k */
	for (;;) {
		char *buf = NULL;
		size_t n = 0;

		if (strncmp(p, "NULL", 4) == 0) {
			p += 4;
			*is_null = 1;
		} else if (*p == '"') {
			buf = malloc(strlen(p) + 1);
			FZ_CHECK(buf);
			for (p++; *p && *p != '"'; p++) {
				if (*p == '\\') {
					p++;
					if (!*p) {
						free(buf);
						return -1;
					}
				}
				buf[n++] = *p;
			}
			if (*p++ != '"') {
				free(buf);
				return -1;
			}
			buf[n] = '\0';
			*is_null = 0;
		} else {
			return -1;
		}
		if (i == k) {
			*out = buf;
			return 0;
		}
		free(buf);
		if (*p != ',')
			return -1;
		p++;
		i++;
	}
}

/* The literal has exactly n elements and ends right after its '}'. */
static void check_shape(const char *lit, size_t n)
{
	char *e;
	int is_null;

	for (size_t k = 0; k < n; k++) {
		FZ_CHECK(array_elem(lit, k, &e, &is_null) == 0);
		free(e);
	}
	FZ_CHECK(lit[strlen(lit) - 1] == '}');
}

static void check_column(const struct batch *b, int field)
{
	char *lit = store_pg_array(b, field), num[24];

	FZ_CHECK(lit);
	if (b->n == 0) {
		FZ_CHECK(strcmp(lit, "{}") == 0);
		free(lit);
		return;
	}
	check_shape(lit, b->n);
	for (size_t k = 0; k < b->n; k++) {
		const struct chat_msg *m = &b->msgs[k];
		const char *want = NULL;
		char *got = NULL;
		int is_null;

		switch (field) {
		case 0:
			want = m->id;
			break;
		case 1:
			snprintf(num, sizeof(num), "%lld", (long long)m->channel_id);
			want = num;
			break;
		case 2:
			snprintf(num, sizeof(num), "%lld", (long long)m->sender_id);
			want = num;
			break;
		case 3:
			want = m->body;
			break;
		default:
			want = m->reply_to[0] ? m->reply_to : NULL;
			break;
		}
		FZ_CHECK(array_elem(lit, k, &got, &is_null) == 0);
		FZ_CHECK(want ? !is_null && strcmp(got, want) == 0 : is_null);
		free(got);
	}
	free(lit);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct batch b; /* 5000 messages: too big for the stack */
	struct fz f = {data, size};
	char *topic = fz_str(&f, NULL);
	struct topic t;
	int chat = topic_parse(topic, 0, &t) == TOPIC_CHAT;

	fz_quiet();
	b.n = 0;
	for (int i = 0; i < MAX_MSGS && f.n; i++) {
		size_t len;
		char *payload = fz_str(&f, &len);
		const char *why;
		size_t before = b.n;
		int ok = chat && topic_chat_payload_ok(payload, (uint32_t)len, &why) == 0;

		FZ_CHECK((store_accept(&b, topic, payload, (int)len, 0) == 0) == ok);
		FZ_CHECK(b.n == before + (ok ? 1 : 0));
		if (ok) {
			const struct chat_msg *m = &b.msgs[before];
			struct json_object *o = jh_parse(payload, len), *v;

			FZ_CHECK(o);
			FZ_CHECK(m->channel_id == t.id[0] && m->sender_id == t.id[1]);
			FZ_CHECK(json_object_object_get_ex(o, "id", &v) &&
				 strcmp(m->id, json_object_get_string(v)) == 0);
			FZ_CHECK(json_object_object_get_ex(o, "body", &v) &&
				 strcmp(m->body, json_object_get_string(v)) == 0);
			FZ_CHECK(m->reply_to[0] ? topic_is_uuid(m->reply_to) : 1);
			json_object_put(o);
		}
		free(payload);
	}
	for (int field = 0; field < 5; field++)
		check_column(&b, field);
	store_clear(&b);
	FZ_CHECK(b.n == 0);
	free(topic);
	return 0;
}
