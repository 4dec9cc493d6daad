/* hubs: the hub broker th-bridge attaches to, and the standby hub.
 *
 * With a standby (TH_MQTT_STANDBY=host:port) the bridge attaches to the
 * primary hub (TH_MQTT_HOST/TH_MQTT_PORT) when it can and to the standby
 * when it cannot, like the edges' Mosquitto bridges (`address A B`,
 * round_robin false): a failed connect tries the other hub next, and while
 * on the standby a TCP connect to the primary every HUBS_PROBE_S (never
 * waited for: the loop looks at it on its next turns) tells when it is
 * back.  The standby is bridged to the primary, so whatever reaches
 * one reaches the other while both run (conf/mosquitto/hub-standby.conf.in).
 * The session on the standby is kept only while connected (main.c gives it
 * no session expiry): what the standby sends after the bridge left also
 * went to the primary over that bridge, where the bridge's lasting session
 * queues it, so nothing piles up on the standby for a client that is gone.
 *
 * libmosquitto's connect blocks until the kernel gives up on a host that
 * never answers (minutes): every connect is preceded by a TCP connect of
 * our own bounded by TH_MQTT_CONNECT_MS (1 s), so a silent hub costs the
 * bridge's loop that long, then the other hub is tried. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bridge.h"
#include "config.h"
#include "log.h"
#include "mono.h"

#define HUBS_PROBE_S 5

static struct {
	char host[2][256];
	int port[2];
	int n;   /* 1: no standby, 2: primary and standby */
	int cur; /* 0: primary, 1: standby */
	uint64_t next_probe_us;
	int probe_ms; /* a TCP connect to a hub waits at most this */
	int probe_fd; /* the return probe's connect in progress, or -1 */
	uint64_t probe_started_us;
} hubs;

int hubs_init(void)
{
	const char *sb = cfg_str("TH_MQTT_STANDBY", NULL);
	const char *colon;
	char *end;
	long port;

	snprintf(hubs.host[0], sizeof(hubs.host[0]), "%s", cfg_str("TH_MQTT_HOST", "127.0.0.1"));
	hubs.port[0] = (int)cfg_int("TH_MQTT_PORT", cfg_int("TH_PORT_BASE", 8080, 1, 65000) + 3, 1,
				    65535);
	hubs.n = 1;
	hubs.cur = 0;
	hubs.probe_ms = (int)cfg_int("TH_MQTT_CONNECT_MS", 1000, 50, 60000);
	hubs.probe_fd = -1;
	if (!sb || !*sb)
		return 0;
	colon = strrchr(sb, ':');
	if (!colon || colon == sb || (size_t)(colon - sb) >= sizeof(hubs.host[1])) {
		log_error("bridge: TH_MQTT_STANDBY must be host:port (got '%s')", sb);
		return -1;
	}
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (errno || *end || port < 1 || port > 65535) {
		log_error("bridge: TH_MQTT_STANDBY must be host:port (got '%s')", sb);
		return -1;
	}
	memcpy(hubs.host[1], sb, (size_t)(colon - sb));
	hubs.host[1][colon - sb] = '\0';
	hubs.port[1] = (int)port;
	hubs.n = 2;
	return 0;
}

const char *hubs_host(void)
{
	return hubs.host[hubs.cur];
}

int hubs_port(void)
{
	return hubs.port[hubs.cur];
}

int hubs_on_standby(void)
{
	return hubs.cur == 1;
}

void hubs_failed(void)
{
	if (hubs.n == 2) {
		hubs.cur ^= 1;
		hubs.next_probe_us = mono_us() + HUBS_PROBE_S * 1000000ull;
	}
}

void hubs_use_primary(void)
{
	hubs.cur = 0;
}

/* Starts a non-blocking TCP connect to hub i's address ai: the socket, or
 * -1 when it failed at once.  *done: accepted already. */
static int connect_start(const struct addrinfo *ai, int *done)
{
	int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
			ai->ai_protocol);

	*done = 0;
	if (fd < 0)
		return -1;
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
		*done = 1;
		return fd;
	}
	if (errno != EINPROGRESS) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Whether a connect in progress on fd was accepted, waiting up to ms. */
static int connect_done(int fd, int ms)
{
	struct pollfd p = {.fd = fd, .events = POLLOUT};
	int err = 0;
	socklen_t len = sizeof(err);

	return poll(&p, 1, ms) == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 &&
	       err == 0;
}

static struct addrinfo *resolve(int i)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC,
				 .ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_ADDRCONFIG},
			*ai = NULL;
	char port[8];

	snprintf(port, sizeof(port), "%d", hubs.port[i]);
	return getaddrinfo(hubs.host[i], port, &hints, &ai) == 0 ? ai : NULL;
}

/* A TCP connect to hub i, each of its addresses in turn, all within
 * probe_ms: 1 when one was accepted (libmosquitto's own connect tries
 * them all too). */
static int probe(int i)
{
	struct addrinfo *ai = resolve(i), *a;
	uint64_t end = mono_us() + (uint64_t)hubs.probe_ms * 1000;
	int ok = 0;

	for (a = ai; a && !ok; a = a->ai_next) {
		uint64_t now = mono_us();
		int done, fd;

		if (now >= end)
			break;
		fd = connect_start(a, &done);
		if (fd < 0)
			continue;
		ok = done || connect_done(fd, (int)((end - now + 999) / 1000));
		close(fd);
	}
	if (ai)
		freeaddrinfo(ai);
	return ok;
}

/* On the standby, every HUBS_PROBE_S: a connect to the primary's first
 * address, started here and looked at by later calls without waiting, so
 * a silent primary never stalls the loop (a refused or reset connect ends
 * at once; one nobody answers is given up after probe_ms). */
int hubs_primary_back(uint64_t now_us)
{
	int ok;

	if (hubs.cur != 1) {
		if (hubs.probe_fd >= 0) {
			close(hubs.probe_fd);
			hubs.probe_fd = -1;
		}
		return 0;
	}
	if (hubs.probe_fd < 0) {
		struct addrinfo *ai;
		int done = 0;

		if (now_us < hubs.next_probe_us)
			return 0;
		hubs.next_probe_us = now_us + HUBS_PROBE_S * 1000000ull;
		ai = resolve(0);
		hubs.probe_fd = ai ? connect_start(ai, &done) : -1;
		if (ai)
			freeaddrinfo(ai);
		hubs.probe_started_us = now_us;
		if (hubs.probe_fd < 0 || !done)
			return 0;
	} else if (!connect_done(hubs.probe_fd, 0)) {
		struct pollfd p = {.fd = hubs.probe_fd, .events = POLLOUT};

		/* still in progress: give up after probe_ms; refused: at once */
		if (poll(&p, 1, 0) == 0 &&
		    now_us - hubs.probe_started_us < (uint64_t)hubs.probe_ms * 1000)
			return 0;
		close(hubs.probe_fd);
		hubs.probe_fd = -1;
		return 0;
	}
	ok = 1;
	close(hubs.probe_fd);
	hubs.probe_fd = -1;
	return ok;
}

int hubs_reachable(void)
{
	return probe(hubs.cur);
}
