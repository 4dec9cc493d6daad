/* addr: client addresses as the front keys them — 16 bytes, IPv4 as
 * ::ffff:a.b.c.d — from the TCP peer, or from the proxy's headers when the
 * peer is a trusted proxy.  Pure functions. */
#ifndef TH_ADDR_H
#define TH_ADDR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "hs.h"

/* The key of an accepted peer (AF_INET or AF_INET6). */
void addr_from_sockaddr(const struct sockaddr_storage *sa, uint8_t out[16]);

/* Parses an IPv4 or IPv6 literal.  0, or -1 (out undefined). */
int addr_parse(struct hs_str s, uint8_t out[16]);

/* 127.0.0.0/8 or ::1 */
int addr_is_loopback(const uint8_t a[16]);

/* The client's address: when key (the peer) is one of trusted[0..n), the
 * request's X-Real-IP, else the last entry of its X-Forwarded-For, replaces
 * it (a value that is no address leaves the peer). */
void addr_client(uint8_t key[16], const struct hs_req *req, const uint8_t (*trusted)[16], int n);

/* Text for logs ("127.0.0.1", "::1"). */
const char *addr_text(const uint8_t a[16], char *out, size_t size);

#endif
