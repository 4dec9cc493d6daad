/* fuzz.h: what the libFuzzer targets of tests/fuzz share.
 *
 * A target's input is cut into fields: fz_str() takes the bytes up to the
 * next NUL (a C string, which is what most of our parsers take), fz_rest()
 * what is left (binary bodies and payloads, NULs included).  Fields are
 * copied into their own heap blocks, so AddressSanitizer sees a read past
 * their end.  FZ_CHECK() turns a broken invariant into a crash that
 * libFuzzer reports and keeps. */
#ifndef TH_FUZZ_H
#define TH_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

struct fz {
	const uint8_t *p;
	size_t n;
};

#define FZ_CHECK(cond)                                                                       \
	do {                                                                                 \
		if (!(cond)) {                                                               \
			fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, __LINE__, \
				#cond);                                                      \
			abort();                                                             \
		}                                                                            \
	} while (0)

/* One byte (0 when the input is used up). */
static inline unsigned fz_byte(struct fz *f)
{
	unsigned b;

	if (!f->n)
		return 0;
	b = f->p[0];
	f->p++;
	f->n--;
	return b;
}

/* The bytes up to the next NUL (or the end), copied and NUL-terminated;
 * *len (may be NULL) its length.  The caller frees it. */
static inline char *fz_str(struct fz *f, size_t *len)
{
	const uint8_t *z = memchr(f->p, '\0', f->n);
	size_t n = z ? (size_t)(z - f->p) : f->n;
	char *s = malloc(n + 1);

	if (!s)
		abort();
	memcpy(s, f->p, n);
	s[n] = '\0';
	f->p += n;
	f->n -= n;
	if (z) {
		f->p++;
		f->n--;
	}
	if (len)
		*len = n;
	return s;
}

/* Everything left, copied (with a NUL after it, not counted). */
static inline char *fz_rest(struct fz *f, size_t *len)
{
	char *s = malloc(f->n + 1);

	if (!s)
		abort();
	memcpy(s, f->p, f->n);
	s[f->n] = '\0';
	*len = f->n;
	f->p += f->n;
	f->n = 0;
	return s;
}

static inline void fz_log_sink(int level, const char *line)
{
	(void)level;
	(void)line;
}

/* Log lines are formatted (that code runs too) but go nowhere. */
static inline void fz_quiet(void)
{
	log_set_sink(fz_log_sink);
	log_set_level(LOG_DEBUG);
}

/* A small PRNG for chunk sizes that the input seeds (deterministic). */
static inline uint32_t fz_rand(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

#endif
