/* arena_fuzz: the arena API of fcgi-apps/lib/arena.h with one malloc per
 * allocation, linked into every fuzz target in place of lib/arena.c.
 *
 * The real arena hands out slices of 16 KiB chunks: a parser that writes
 * past its slice lands in the next one and AddressSanitizer sees nothing.
 * Here every allocation is its own heap block (ASan puts a red zone after
 * it), kept on a list so arena_reset() and arena_free() still release
 * everything at once.  Defining every arena_* symbol keeps arena.o out of
 * the link. */
#include "arena.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The list node sits in front of the bytes handed out: the red zone ASan
 * adds after the block is right after the caller's n bytes. */
struct arena_chunk {
	struct arena_chunk *next;
	size_t size;
	_Alignas(16) unsigned char data[];
};

void arena_init(struct arena *a)
{
	a->head = NULL;
	a->total = 0;
}

void *arena_alloc(struct arena *a, size_t n)
{
	struct arena_chunk *c;

	if (n == 0)
		n = 1;
	if (n > SIZE_MAX - sizeof(*c))
		return NULL;
	c = malloc(sizeof(*c) + n);
	if (!c)
		return NULL;
	memset(c->data, 0, n);
	c->size = n;
	c->next = a->head;
	a->head = c;
	a->total += n;
	return c->data;
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

void arena_free(struct arena *a)
{
	struct arena_chunk *c = a->head, *next;

	while (c) {
		next = c->next;
		free(c);
		c = next;
	}
	a->head = NULL;
	a->total = 0;
}

void arena_reset(struct arena *a)
{
	arena_free(a);
}
