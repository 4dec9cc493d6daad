/* ids: the two kinds of id the API uses — integers (users, communities,
 * posts, channels, …) and UUIDs (messages, media) — as text. */
#ifndef TH_IDS_H
#define TH_IDS_H

#include <stddef.h>
#include <stdint.h>

#define IDS_UUID_LEN 36

/* "123" (or "-123") for id, into buf; returns buf.  By hand, not snprintf:
 * a cached feed hit formats several. */
const char *ids_text(char buf[24], int64_t id);

/* Room for ids_array() of n ids: 20 digits and a sign or comma each, the
 * braces and the terminator. */
#define IDS_ARRAY_SIZE(n) ((size_t)(n)*21 + 3)

/* "{1,2,3}" for the n ids, into buf (size bytes): a bigint[] parameter, as
 * PostgreSQL reads it in `= ANY($1::bigint[])`.  Returns its length, or -1
 * (buf "{}") when size is below IDS_ARRAY_SIZE(n). */
int ids_array(char *buf, size_t size, const int64_t *ids, size_t n);

/* 1 when s (n bytes) is xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx in hex digits
 * of either case, else 0 (NULL too). */
int ids_uuid_ok(const char *s, size_t n);

/* The canonical (lower case) form of s, as PostgreSQL prints a uuid, into
 * out: what a stored id is compared with as text (an index, a join), so
 * that one id has one spelling.  s must pass ids_uuid_ok(). */
void ids_uuid_lower(char out[IDS_UUID_LEN + 1], const char *s);

#endif
