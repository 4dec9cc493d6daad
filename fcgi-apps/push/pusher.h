/* th-pusher: drains push_outbox to the browsers' push services
 * (db/migrations/0026_push.sql).  main.c: the settings and the send of one
 * row on the core's outbox loop (lib/outbox.h); http.c: one POST over
 * libcurl. */
#ifndef TH_PUSHER_H
#define TH_PUSHER_H
#include <stddef.h>

/* TH_PUSH_TIMEOUT_S (default 10): the bound of one push_post(). */
int push_http_init(void);
void push_http_fini(void);
long push_http_timeout_s(void);

/* POSTs body (len bytes, aes128gcm) to endpoint with the VAPID
 * authorization, TTL (seconds) and urgency.  The HTTP status, or -1 on a
 * network error or timeout (err says why). */
int push_post(const char *endpoint, const char *authorization, long ttl_s, const char *urgency,
	      const unsigned char *body, size_t len, char *err, size_t errsize);

#endif
