/* arena: a per-request bump allocator.
 *
 * Created once per worker, reset after every request: everything a request
 * allocates (decoded params, the response body, copies of header values) lives
 * here and is released at once by arena_reset().  Nothing allocated from an
 * arena is ever freed one by one. */
#ifndef TH_ARENA_H
#define TH_ARENA_H

#include <stdarg.h>
#include <stddef.h>

struct arena_chunk;

struct arena {
	struct arena_chunk *head; /* newest chunk first */
	size_t total;             /* bytes handed out since the last reset */
};

void arena_init(struct arena *a);
/* Returns zeroed memory aligned for any type, or NULL when out of memory. */
void *arena_alloc(struct arena *a, size_t n);
/* Copies n bytes of s and adds a NUL.  NULL when out of memory. */
char *arena_strndup(struct arena *a, const char *s, size_t n);
char *arena_strdup(struct arena *a, const char *s);
/* printf into the arena.  NULL on error. */
char *arena_printf(struct arena *a, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
char *arena_vprintf(struct arena *a, const char *fmt, va_list ap);
/* Releases everything but keeps the first chunk for the next request. */
void arena_reset(struct arena *a);
/* Releases everything.  Safe on a zeroed or already freed arena. */
void arena_free(struct arena *a);

#endif
