/* supersede: outbox events a later event of the same batch makes old.
 *
 * An `unread` event carries a user's whole state for one channel (marker,
 * count, mentions) and a `channel_activity` event a channel's whole last
 * seq: of several for the same user and channel, or the same channel, in
 * one relay batch only the last (in outbox order) says anything a client
 * does not hear again from it.  The relay publishes that one and deletes
 * the others with it.  Every other type is published as it is. */
#ifndef TH_BRIDGE_SUPERSEDE_H
#define TH_BRIDGE_SUPERSEDE_H

#include <stdint.h>

struct json_object;

struct supersede_key {
	int kind; /* 0: never superseded */
	int64_t a, b;
};

/* The key of an outbox event's payload (a JSON object, or NULL). */
struct supersede_key supersede_key_of(struct json_object *o);

/* old[i] = 1 when a later key (j > i) equals key i, else 0; n keys. */
void supersede_mark(const struct supersede_key *keys, int n, unsigned char *old);

#endif
