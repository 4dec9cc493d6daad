/* jhcore: the JSON parser every part shares (the apps' bodies, the broker
 * plugin's and the bridge's payloads, tokens): strict, bounded, valid UTF-8
 * only.  The request-facing getters (jh_*_or_400) are the web library's
 * jh.h, which includes this header.  Lengths are counted in Unicode code
 * points, as API.md's "chars". */
#ifndef TH_JHCORE_H
#define TH_JHCORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct json_object;

#define JH_MAX_DEPTH 32

/* Parses len bytes as one JSON value, at most JH_MAX_DEPTH deep, nothing but
 * whitespace after it, valid UTF-8, every number finite (no NaN, Infinity or
 * 1e999).  Returns a new reference (caller puts it) or NULL. */
struct json_object *jh_parse(const char *s, size_t len);

/* Number of code points of valid UTF-8, or -1 when s is not valid UTF-8. */
long jh_utf8_len(const char *s, size_t n);

/* 1 when s (n bytes) holds a C0 control character or DEL, except \n \r \t
 * when multiline. */
int jh_has_control(const char *s, size_t n, bool multiline);

/* 1 when s (n bytes of valid UTF-8) holds a character that changes how the
 * text around it reads without showing itself: C1 controls (U+0080..9F),
 * the zero-width and direction marks U+200B..200F, the embeddings and
 * overrides U+202A..202E, U+2060..2069 (word joiner, invisible operators,
 * isolates), U+061C and U+FEFF.  Names people read as someone's refuse
 * them ("Ali\u202Eecila" shows as another name). */
int jh_has_invisible(const char *s, size_t n);

/* The string member `name` of object o, or NULL (absent, not a string, or o
 * not an object).  The pointer is o's. */
const char *jh_member_str(struct json_object *o, const char *name);
/* The integer member `name` of o into *out: 0, or -1 (absent or not an
 * integer). */
int jh_member_int(struct json_object *o, const char *name, int64_t *out);

#endif
