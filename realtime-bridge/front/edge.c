/* edge: see edge.h. */
#include "edge.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static uint64_t mix64(uint64_t x)
{
	/* splitmix64's finalizer */
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	x ^= x >> 31;
	return x;
}

static uint64_t fnv1a(const char *s)
{
	uint64_t h = 1469598103934665603ull;

	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211ull;
	return h;
}

uint64_t edge_weight(uint64_t seed, int64_t uid)
{
	return mix64(seed ^ mix64((uint64_t)uid));
}

int edge_parse_list(const char *s, struct edge *out, int max, char *err, size_t errsize)
{
	int n = 0;

	while (*s) {
		const char *c = strchr(s, ',');
		size_t l = c ? (size_t)(c - s) : strlen(s);
		char item[32 + sizeof(((struct sockaddr_un *)0)->sun_path)], *colon, *at, *end;
		long port;

		if (l == 0 || l >= sizeof(item)) {
			snprintf(err, errsize, "edge %d: empty or too long", n + 1);
			return -1;
		}
		if (n == max) {
			snprintf(err, errsize, "more than %d edges", max);
			return -1;
		}
		memcpy(item, s, l);
		item[l] = '\0';
		memset(&out[n], 0, sizeof(out[n]));
		at = strchr(item, '@');
		if (at) {
			*at++ = '\0';
			if (at[0] != '/' || strlen(at) >= sizeof(out[n].un.sun_path)) {
				snprintf(err, errsize,
					 "edge '%s': an absolute unix socket path after '@' "
					 "expected",
					 item);
				return -1;
			}
			out[n].un.sun_family = AF_UNIX;
			memcpy(out[n].un.sun_path, at, strlen(at) + 1);
		}
		if (strlen(item) >= sizeof(out[n].name)) {
			snprintf(err, errsize, "edge %d: host:port too long", n + 1);
			return -1;
		}
		colon = strrchr(item, ':');
		if (!colon) {
			snprintf(err, errsize, "edge '%s': host:port expected", item);
			return -1;
		}
		*colon = '\0';
		port = strtol(colon + 1, &end, 10);
		out[n].addr.sin_family = AF_INET;
		if (*end || port < 1 || port > 65535 ||
		    inet_pton(AF_INET, item, &out[n].addr.sin_addr) != 1) {
			snprintf(err, errsize, "edge '%s:%s': an IPv4 address and a port expected",
				 item, colon + 1);
			return -1;
		}
		out[n].addr.sin_port = htons((uint16_t)port);
		*colon = ':';
		memcpy(out[n].name, item, strlen(item) + 1); /* fits: checked above */
		out[n].seed = fnv1a(out[n].name);
		n++;
		s += l + (c ? 1 : 0);
	}
	if (n == 0)
		snprintf(err, errsize, "no edge");
	return n ? n : -1;
}

static int dial_tcp(const struct edge *e)
{
	int one = 1, fd;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -2;
	/* MQTT packets are whole when written: no reason to hold them back */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (const struct sockaddr *)&e->addr, sizeof(e->addr)) < 0 &&
	    errno != EINPROGRESS) {
		close(fd);
		return -1;
	}
	return fd;
}

int edge_dial(const struct edge *e, int tcp)
{
	int fd;

	if (tcp || e->un.sun_family != AF_UNIX)
		return dial_tcp(e);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -2;
	if (connect(fd, (const struct sockaddr *)&e->un, sizeof(e->un)) == 0)
		return fd;
	close(fd);
	/* A unix connect does not wait: EAGAIN is the broker's accept backlog
	 * (10 connections in mosquitto 2.0) full for now.  Refused or missing
	 * (a broker restarting, a listener not configured): its port decides
	 * whether the edge is down, not its socket. */
	return -3;
}

void edge_rank(const struct edge *e, int n, int64_t uid, int *order)
{
	uint64_t w[SHM_MAX_EDGES];
	int i, j;

	/* insertion sort: n <= 16 */
	for (i = 0; i < n; i++) {
		uint64_t wi = edge_weight(e[i].seed, uid);

		for (j = i; j > 0 && w[j - 1] < wi; j--) {
			w[j] = w[j - 1];
			order[j] = order[j - 1];
		}
		w[j] = wi;
		order[j] = i;
	}
}

int edge_pick(struct shm *s, const int *order, int n, int from, int64_t now_ms, int *pos)
{
	int i;

	for (i = from; i < n; i++) {
		if (shm_edge_down_until(s, order[i]) <= now_ms) {
			*pos = i;
			return order[i];
		}
	}
	return -1;
}
