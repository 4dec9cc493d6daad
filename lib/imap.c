/* imap: see imap.h. */
#include "imap.h"

#include <stdlib.h>

static size_t home(const struct imap *m, int64_t key)
{
	uint64_t h = (uint64_t)key * 0x9e3779b97f4a7c15ull;

	return (size_t)(h ^ (h >> 29)) & (m->cap - 1);
}

int imap_init(struct imap *m, size_t cap)
{
	size_t c = 16;

	while (c < cap)
		c <<= 1;
	m->slots = calloc(c, sizeof(*m->slots));
	m->cap = m->slots ? c : 0;
	m->len = 0;
	return m->slots ? 0 : -1;
}

void imap_free(struct imap *m)
{
	free(m->slots);
	m->slots = NULL;
	m->cap = m->len = 0;
}

int64_t *imap_get(struct imap *m, int64_t key)
{
	size_t i;

	if (!m->cap || key == 0)
		return NULL;
	for (i = home(m, key); m->slots[i].key; i = (i + 1) & (m->cap - 1))
		if (m->slots[i].key == key)
			return &m->slots[i].val;
	return NULL;
}

static int grow(struct imap *m)
{
	struct imap old = *m;
	size_t i;

	if (imap_init(m, old.cap * 2) < 0) {
		*m = old;
		return -1;
	}
	for (i = 0; i < old.cap; i++)
		if (old.slots[i].key)
			imap_put(m, old.slots[i].key, old.slots[i].val);
	free(old.slots);
	return 0;
}

int imap_put(struct imap *m, int64_t key, int64_t val)
{
	size_t i;

	if (key == 0)
		return -1;
	if ((m->len + 1) * 2 > m->cap && grow(m) < 0)
		return -1;
	for (i = home(m, key); m->slots[i].key; i = (i + 1) & (m->cap - 1)) {
		if (m->slots[i].key == key) {
			m->slots[i].val = val;
			return 0;
		}
	}
	m->slots[i].key = key;
	m->slots[i].val = val;
	m->len++;
	return 0;
}

int imap_del(struct imap *m, int64_t key)
{
	size_t i, j, h;

	if (!m->cap || key == 0)
		return 0;
	for (i = home(m, key); m->slots[i].key != key; i = (i + 1) & (m->cap - 1))
		if (!m->slots[i].key)
			return 0;
	/* backward shift: pull later entries of the run into the hole so no
	 * lookup stops early at it */
	for (j = (i + 1) & (m->cap - 1); m->slots[j].key; j = (j + 1) & (m->cap - 1)) {
		h = home(m, m->slots[j].key);
		if (((j - h) & (m->cap - 1)) >= ((j - i) & (m->cap - 1))) {
			m->slots[i] = m->slots[j];
			i = j;
		}
	}
	m->slots[i].key = 0;
	m->slots[i].val = 0;
	m->len--;
	return 1;
}
