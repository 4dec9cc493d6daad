/* arena: a per-request bump allocator, and the request's cleanups.
 *
 * Created once per worker, reset after every request: everything a request
 * allocates (decoded params, the response body, copies of header values) lives
 * here and is released at once by arena_reset().  Nothing allocated from an
 * arena is ever freed one by one.  What a request holds outside it (a
 * PGresult, a redisReply, a json-c object, a MagickWand) can be handed to it
 * with arena_defer(): it is released with the arena, so a handler that
 * leaves early leaks nothing and frees nothing by hand. */
#ifndef TH_ARENA_H
#define TH_ARENA_H

#include <stdarg.h>
#include <stddef.h>

struct arena_chunk;
struct arena_cleanup;

struct arena {
	struct arena_chunk *head;       /* newest chunk first */
	size_t total;                   /* bytes handed out since the last reset */
	struct arena_cleanup *cleanups; /* newest first */
};

typedef void (*arena_cleanup_fn)(void *p);

void arena_init(struct arena *a);
/* Returns zeroed memory aligned for any type, or NULL when out of memory. */
void *arena_alloc(struct arena *a, size_t n);
/* Copies n bytes of s and adds a NUL.  NULL when out of memory. */
char *arena_strndup(struct arena *a, const char *s, size_t n);
char *arena_strdup(struct arena *a, const char *s);
/* printf into the arena.  NULL on error. */
char *arena_printf(struct arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
char *arena_vprintf(struct arena *a, const char *fmt, va_list ap);
/* Hands p to the arena: fn(p) runs at the next arena_reset() or
 * arena_free(), after every cleanup registered later (last in, first out).
 * 0; -1 when out of memory, and then fn(p) has already run (p is released
 * either way: the caller never frees it). */
int arena_defer(struct arena *a, arena_cleanup_fn fn, void *p);
/* Runs p's cleanup now and forgets it, for what must die before the request
 * ends (a decoded image before the next step; one of many results in a
 * loop).  0; -1 when p was not handed to a (then nothing runs). */
int arena_release(struct arena *a, void *p);
/* Releases everything but keeps the first chunk for the next request; runs
 * the cleanups first. */
void arena_reset(struct arena *a);
/* Releases everything, cleanups first.  Safe on a zeroed or already freed
 * arena. */
void arena_free(struct arena *a);

#endif
