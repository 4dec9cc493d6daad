/* arena: chunks of 16 KiB (or larger for a big allocation), newest first. */
#include "arena.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_CHUNK 16384
#define ARENA_ALIGN 16

/* TH_ARENA_EXACT (the fuzz build, Makefile SANITIZE=fuzz): every allocation
 * is a heap block of its own, of exactly its size, so AddressSanitizer's red
 * zone sits right after it; a slice of a shared chunk would hide an overrun
 * that stays inside the chunk. */
#ifdef TH_ARENA_EXACT
#define ARENA_EXACT 1
#else
#define ARENA_EXACT 0
#endif

struct arena_chunk {
	struct arena_chunk *next;
	size_t size; /* usable bytes in data */
	size_t used;
	_Alignas(ARENA_ALIGN) unsigned char data[];
};

struct arena_cleanup {
	struct arena_cleanup *next;
	arena_cleanup_fn fn;
	void *p;
};

void arena_init(struct arena *a)
{
	a->head = NULL;
	a->total = 0;
	a->cleanups = NULL;
}

static struct arena_chunk *chunk_new(size_t min)
{
	size_t size = ARENA_EXACT || min > ARENA_CHUNK ? min : ARENA_CHUNK;
	struct arena_chunk *c;

	if (size > SIZE_MAX - sizeof(*c))
		return NULL;
	c = malloc(sizeof(*c) + size);
	if (!c)
		return NULL;
	c->next = NULL;
	c->size = size;
	c->used = 0;
	return c;
}

void *arena_alloc(struct arena *a, size_t n)
{
	struct arena_chunk *c = a->head;
	size_t need;
	void *p;

	if (n == 0)
		n = 1;
	if (n > SIZE_MAX - ARENA_ALIGN)
		return NULL;
	need = ARENA_EXACT ? n : (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
	if (ARENA_EXACT || !c || c->size - c->used < need) {
		c = chunk_new(need);
		if (!c)
			return NULL;
		c->next = a->head;
		a->head = c;
	}
	p = c->data + c->used;
	c->used += need;
	a->total += need;
	memset(p, 0, n);
	return p;
}

char *arena_strndup(struct arena *a, const char *s, size_t n)
{
	char *p = arena_alloc(a, n + 1);

	if (!p)
		return NULL;
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *arena_strdup(struct arena *a, const char *s)
{
	return arena_strndup(a, s, strlen(s));
}

char *arena_vprintf(struct arena *a, const char *fmt, va_list ap)
{
	va_list ap2;
	int n;
	char *p;

	va_copy(ap2, ap);
	n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0)
		return NULL;
	p = arena_alloc(a, (size_t)n + 1);
	if (!p)
		return NULL;
	vsnprintf(p, (size_t)n + 1, fmt, ap);
	return p;
}

char *arena_printf(struct arena *a, const char *fmt, ...)
{
	va_list ap;
	char *p;

	va_start(ap, fmt);
	p = arena_vprintf(a, fmt, ap);
	va_end(ap);
	return p;
}

int arena_defer(struct arena *a, arena_cleanup_fn fn, void *p)
{
	struct arena_cleanup *k = arena_alloc(a, sizeof(*k));

	if (!k) {
		fn(p);
		return -1;
	}
	k->fn = fn;
	k->p = p;
	k->next = a->cleanups;
	a->cleanups = k;
	return 0;
}

int arena_release(struct arena *a, void *p)
{
	struct arena_cleanup **pk;

	/* a request hands over a few objects: a walk of the list is cheap */
	for (pk = &a->cleanups; *pk; pk = &(*pk)->next) {
		struct arena_cleanup *k = *pk;

		if (k->p == p) {
			*pk = k->next;
			k->fn(k->p);
			return 0;
		}
	}
	return -1;
}

/* The cleanups live in the chunks: run them all before any chunk goes.  A
 * cleanup that defers another (it should not) gets it run in this pass. */
static void run_cleanups(struct arena *a)
{
	struct arena_cleanup *k;

	while ((k = a->cleanups) != NULL) {
		a->cleanups = k->next;
		k->fn(k->p);
	}
}

void arena_reset(struct arena *a)
{
	struct arena_chunk *c, *next;

	run_cleanups(a);
	c = a->head;
	if (!c)
		return;
	/* Keep the oldest chunk (the last in the list) if it is of the standard
	 * size: it is what a typical request needs, so steady state allocates
	 * nothing from malloc. */
	while (c->next) {
		next = c->next;
		free(c);
		c = next;
	}
	if (ARENA_EXACT || c->size != ARENA_CHUNK) {
		free(c);
		c = NULL;
	} else {
		c->used = 0;
	}
	a->head = c;
	a->total = 0;
}

void arena_free(struct arena *a)
{
	struct arena_chunk *c, *next;

	run_cleanups(a);
	c = a->head;
	while (c) {
		next = c->next;
		free(c);
		c = next;
	}
	a->head = NULL;
	a->total = 0;
}
