/* imap: an open-addressing hash map from int64 keys to int64 values
 * (linear probing, backward-shift deletion, grows at half full).  Key 0 is
 * reserved for empty slots.  Used for the plugin's connection and user
 * tables, which change on every connect and disconnect. */
#ifndef TH_IMAP_H
#define TH_IMAP_H

#include <stddef.h>
#include <stdint.h>

struct imap_slot {
	int64_t key;
	int64_t val;
};

struct imap {
	struct imap_slot *slots;
	size_t cap; /* power of two */
	size_t len;
};

int imap_init(struct imap *m, size_t cap);
void imap_free(struct imap *m);
/* Pointer to the value of key, or NULL. */
int64_t *imap_get(struct imap *m, int64_t key);
/* Sets key to val (inserting it).  0, or -1 when out of memory. */
int imap_put(struct imap *m, int64_t key, int64_t val);
/* Removes key; 1 when it was there. */
int imap_del(struct imap *m, int64_t key);

#endif
