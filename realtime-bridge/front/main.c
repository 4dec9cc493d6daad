/* th-wsfront: the WebSocket front of the real-time tier (issue 18).
 *
 * Browsers' MQTT-over-WebSocket connections end here; each becomes one raw
 * MQTT TCP connection to an edge broker chosen from the user id of its
 * CONNECT (edge.h).  The master reads the settings from the environment,
 * makes the shared memory, forks TH_WS_FRONTS workers (each with its own
 * SO_REUSEPORT socket on the same port: loop.c), restarts a worker that
 * dies, and stops them all on SIGTERM.
 *
 * The port must not be reachable from outside the host while loopback is a
 * trusted proxy (TH_WS_TRUSTED_PROXIES): a local peer could claim any
 * address in X-Real-IP.  nginx is the public entry (/mqtt). */
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "front.h"
#include "log.h"

struct front_cfg cfg;

static volatile sig_atomic_t stop_sig;

static void on_stop(int sig)
{
	stop_sig = sig;
}

/* a positive integer setting within [lo, hi], or def when unset */
static int env_uint(const char *name, unsigned def, unsigned lo, unsigned hi, unsigned *out)
{
	const char *s = getenv(name);
	char *end;
	unsigned long v;

	if (!s || !*s) {
		*out = def;
		return 0;
	}
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v < lo || v > hi) {
		fprintf(stderr, "th-wsfront: %s must be an integer in %u..%u (got '%s')\n", name,
			lo, hi, s);
		return -1;
	}
	*out = (unsigned)v;
	return 0;
}

static int parse_trusted(const char *s)
{
	char item[64];

	while (*s) {
		const char *c = strchr(s, ',');
		size_t l = c ? (size_t)(c - s) : strlen(s);
		uint8_t *a;

		if (cfg.n_trusted == FRONT_MAX_TRUSTED || l == 0 || l >= sizeof(item)) {
			fprintf(stderr, "th-wsfront: TH_WS_TRUSTED_PROXIES: at most %d addresses\n",
				FRONT_MAX_TRUSTED);
			return -1;
		}
		memcpy(item, s, l);
		item[l] = '\0';
		a = cfg.trusted[cfg.n_trusted];
		memset(a, 0, 16);
		if (inet_pton(AF_INET, item, a + 12) == 1) {
			a[10] = a[11] = 0xff;
		} else if (inet_pton(AF_INET6, item, a) != 1) {
			fprintf(stderr,
				"th-wsfront: TH_WS_TRUSTED_PROXIES: '%s' is no IP address\n", item);
			return -1;
		}
		cfg.n_trusted++;
		s += l + (c ? 1 : 0);
	}
	return 0;
}

static int config(void)
{
	unsigned base, port, fronts, hs_s, idle_s;
	const char *bind = getenv("TH_WS_BIND"), *edges = getenv("TH_WS_EDGES");
	const char *trusted = getenv("TH_WS_TRUSTED_PROXIES");
	char def_edges[32], err[128];

	if (env_uint("TH_PORT_BASE", 8080, 1024, 65529, &base) < 0 ||
	    env_uint("TH_WS_PORT", base + 4, 1, 65535, &port) < 0 ||
	    env_uint("TH_WS_FRONTS", 2, 1, SHM_MAX_WORKERS, &fronts) < 0 ||
	    env_uint("TH_WS_MAX_PER_ADDR", 100, 1, 65535, &cfg.max_per_addr) < 0 ||
	    /* at most what a connection buffers toward its edge (conn.c, UP_MAX):
	     * a CONNECT longer than that would never be read whole */
	    env_uint("TH_MQTT_MAX_PACKET", 65536, 1024, 65536, &cfg.max_packet) < 0 ||
	    env_uint("TH_WS_HANDSHAKE_S", 10, 1, 3600, &hs_s) < 0 ||
	    env_uint("TH_WS_CONNECT_INFLIGHT", 64, 1, 100000, &cfg.connect_inflight) < 0 ||
	    /* at least a few edge reads (16 KiB each): the bound is checked before
	     * the flush, so a lower one would cut clients that keep up */
	    env_uint("TH_WS_OUT_MAX", 262144, 65536, 1u << 30, &cfg.out_max) < 0 ||
	    /* a connection counts its pings in 16 bits */
	    env_uint("TH_WS_PINGS_PER_S", 10, 1, 60000, &cfg.pings_per_s) < 0 ||
	    env_uint("TH_WS_IDLE_S", 600, 1, 86400, &idle_s) < 0 ||
	    env_uint("TH_WS_TCP_KEEPALIVE_S", 300, 0, 26000, &cfg.tcp_keepalive_s) < 0 ||
	    env_uint("TH_WS_MAX_CONNS", 9000, 1, 1000000, &cfg.max_conns) < 0 ||
	    env_uint("TH_WS_EDGE_DOWN_MS", 2000, 1, 600000, &cfg.edge_down_ms) < 0 ||
	    env_uint("TH_WS_EDGE_CONNECT_MS", 2000, 1, 600000, &cfg.edge_connect_ms) < 0)
		return -1;
	cfg.port = (int)port;
	cfg.fronts = (int)fronts;
	cfg.handshake_ms = hs_s * 1000;
	cfg.idle_ms = idle_s * 1000;
	if (inet_pton(AF_INET, bind && *bind ? bind : "127.0.0.1", &cfg.bind) != 1) {
		fprintf(stderr, "th-wsfront: TH_WS_BIND must be an IPv4 address (got '%s')\n",
			bind);
		return -1;
	}
	if (!edges || !*edges) {
		snprintf(def_edges, sizeof(def_edges), "127.0.0.1:%u", base + 3);
		edges = def_edges;
	}
	cfg.n_edges = edge_parse_list(edges, cfg.edges, SHM_MAX_EDGES, err, sizeof(err));
	if (cfg.n_edges < 0) {
		fprintf(stderr, "th-wsfront: TH_WS_EDGES: %s\n", err);
		return -1;
	}
	cfg.origins = getenv("TH_WS_ORIGINS");
	return parse_trusted(trusted ? trusted : "127.0.0.1,::1");
}

static pid_t spawn(int id, struct shm *shm)
{
	pid_t pid = fork();

	if (pid == 0) {
		signal(SIGTERM, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		/* exit, not _exit: a sanitizer build checks the worker for leaks */
		exit(loop_run(id, shm));
	}
	if (pid < 0)
		log_error("wsfront: fork: %s", strerror(errno));
	return pid;
}

int main(void)
{
	pid_t pids[SHM_MAX_WORKERS] = {0};
	struct sigaction sa;
	struct shm *shm;
	const char *lvl = getenv("TH_LOG_LEVEL");
	int i, alive, status = 0;

	log_init("wsfront");
	if (lvl && log_parse_level(lvl) >= 0)
		log_set_level((enum log_level)log_parse_level(lvl));
	if (config() < 0)
		return 2;
	shm = shm_create();
	if (!shm) {
		fprintf(stderr, "th-wsfront: shared memory: %s\n", strerror(errno));
		return 1;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	log_info("wsfront: %d workers on %s:%d, %d edge(s) (first %s)", cfg.fronts,
		 inet_ntoa(cfg.bind), cfg.port, cfg.n_edges, cfg.edges[0].name);
	for (i = 0; i < cfg.fronts; i++)
		pids[i] = spawn(i, shm);
	while (!stop_sig) {
		int st;
		pid_t p = waitpid(-1, &st, 0);

		if (p < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		for (i = 0; i < cfg.fronts; i++) {
			if (pids[i] != p)
				continue;
			log_error("wsfront: worker %d (pid %d) ended (%s %d), restarting", i,
				  (int)p, WIFSIGNALED(st) ? "signal" : "status",
				  WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
			shm_worker_reset(shm, i);
			if (!stop_sig) {
				/* a worker that cannot start at all must not spin */
				sleep(1);
				pids[i] = spawn(i, shm);
			}
		}
	}
	for (i = 0; i < cfg.fronts; i++)
		if (pids[i] > 0)
			kill(pids[i], SIGTERM);
	/* the workers close their connections and end; SIGKILL after 5 s */
	for (alive = 1, i = 0; alive && i < 50; i++) {
		struct timespec ts = {0, 100000000};
		int k;

		alive = 0;
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
		for (k = 0; k < cfg.fronts; k++)
			if (pids[k] > 0 && kill(pids[k], 0) == 0)
				alive = 1;
		if (alive)
			nanosleep(&ts, NULL);
	}
	for (i = 0; i < cfg.fronts; i++)
		if (pids[i] > 0 && kill(pids[i], 0) == 0) {
			kill(pids[i], SIGKILL);
			status = 1;
		}
	log_info("wsfront: stopped");
	return status;
}
