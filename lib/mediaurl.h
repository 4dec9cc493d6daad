/* mediaurl: the URLs of stored media, shared by the media app (which serves
 * them) and the community app (whose posts list them).
 *
 * Public media (profile media, a public community's) get plain URLs.
 * Private ones get ?exp=<unix seconds>&sig=<hex HMAC-SHA256> over
 * "<id>/<variant>/<exp>" with the key in TH_MEDIA_URL_SECRET_FILE (default
 * $TH_VAR_DIR/keys/media-url.secret, made by scripts/stack): whoever holds
 * the URL may fetch that one variant until exp, as an <img src> needs.
 * exp is rounded up to a multiple of TH_MEDIA_URL_TTL, so one medium's URLs
 * stay the same for a while and browsers can cache the bytes. */
#ifndef TH_MEDIAURL_H
#define TH_MEDIAURL_H

#include <stddef.h>

#include "arena.h"

/* Reads the key and the TTL.  0, or -1 with a message on stderr. */
int mediaurl_init(void);
long mediaurl_ttl(void);

/* "/media/<id>/<variant>[?exp=&sig=]" into the arena; NULL when out of memory. */
char *mediaurl_make(struct arena *a, const char *id, const char *variant, int is_public);

/* The same into buf (size bytes); returns buf, or NULL when it does not fit
 * or cannot be signed (a private URL for an id or variant holding '/', or
 * too long for the signed text). */
char *mediaurl_write(char *buf, size_t size, const char *id, const char *variant, int is_public);

/* Checks exp (a decimal string) and sig (64 hex chars) for id/variant:
 * 1 valid, -1 invalid or expired (or an id/variant no URL is signed for). */
int mediaurl_check(const char *id, const char *variant, const char *exp, const char *sig);

#endif
