/* limits: settings, keys, and the one check every limited write route calls. */
#include "userlimits.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "metrics.h"
#include "ratelimit.h"
#include "reply.h"

struct limits limits;
static int unavailable = -1; /* metrics counter */

static const struct {
	const char *name; /* in keys: th:rl:<name>:<uid> */
	const char *max_var, *window_var;
	long max, window_s;
} kinds[LIMIT_KINDS] = {
	[LIMIT_POST] = {"post", "TH_RL_POST_MAX", "TH_RL_POST_WINDOW", 10, 60},
	[LIMIT_COMMENT] = {"comment", "TH_RL_COMMENT_MAX", "TH_RL_COMMENT_WINDOW", 30, 60},
	[LIMIT_COMMUNITY] = {"community", "TH_RL_COMMUNITY_MAX", "TH_RL_COMMUNITY_WINDOW", 5,
			     86400},
	[LIMIT_REACTION] = {"reaction", "TH_RL_REACTION_MAX", "TH_RL_REACTION_WINDOW", 60, 60},
	[LIMIT_CALL] = {"call", "TH_RL_CALL_MAX", "TH_RL_CALL_WINDOW", 20, 60},
	[LIMIT_DM] = {"dm", "TH_RL_DM_MAX", "TH_RL_DM_WINDOW", 20, 3600},
	[LIMIT_BLOCK] = {"block", "TH_RL_BLOCK_MAX", "TH_RL_BLOCK_WINDOW", 100, 3600},
	[LIMIT_PUSH] = {"push", "TH_RL_PUSH_MAX", "TH_RL_PUSH_WINDOW", 30, 3600},
	[LIMIT_SEARCH] = {"search", "TH_RL_SEARCH_MAX", "TH_RL_SEARCH_WINDOW", 60, 60},
	[LIMIT_EDIT] = {"edit", "TH_RL_EDIT_MAX", "TH_RL_EDIT_WINDOW", 30, 60},
	[LIMIT_REPORT] = {"report", "TH_RL_REPORT_MAX", "TH_RL_REPORT_WINDOW", 20, 3600},
	[LIMIT_MANAGE] = {"manage", "TH_RL_MANAGE_MAX", "TH_RL_MANAGE_WINDOW", 60, 60},
	[LIMIT_READ] = {"read", "TH_RL_READ_MAX", "TH_RL_READ_WINDOW", 600, 60},
	[LIMIT_SETTING] = {"setting", "TH_RL_SETTING_MAX", "TH_RL_SETTING_WINDOW", 60, 60},
	[LIMIT_MESSAGE] = {"msg", NULL, NULL, 0, 0},
};

void limits_init(void)
{
	for (int k = 0; k < LIMIT_KINDS; k++) {
		if (!kinds[k].max_var)
			continue;
		limits.max[k] = (long)cfg_int(kinds[k].max_var, kinds[k].max, 1, 1000000);
		limits.window_s[k] = (long)cfg_int(kinds[k].window_var, kinds[k].window_s, 1,
						   30LL * 86400);
	}
	limits.msg_interval_ms = (long)cfg_int("TH_RL_MSG_INTERVAL_MS", 100, 1, 3600000);
	limits.msg_burst = (long)cfg_int("TH_RL_MSG_BURST", 30, 1, 1000000);
	limits.reaction_kinds_max = (long)cfg_int("TH_REACTION_KINDS_MAX", 50, 1, 100000);
	limits.channels_max = (long)cfg_int("TH_CHANNELS_MAX", 500, 1, 100000);
	unavailable = metrics_counter("limits_unavailable_total");
}

const char *limits_key(char *buf, size_t size, enum limit_kind kind, int64_t uid)
{
	snprintf(buf, size, "th:rl:%s:%lld", kinds[kind].name, (long long)uid);
	return buf;
}

/* An anonymous caller's key: its address's ("th:rl:search:a:192.0.2.7"),
 * an IPv6 address by its /64 (one host may hold all of that). */
static void addr_key(char *buf, size_t size, enum limit_kind kind, const char *addr)
{
	unsigned char a6[16];
	char net[INET6_ADDRSTRLEN];

	if (inet_pton(AF_INET6, addr, a6) == 1) {
		memset(a6 + 8, 0, 8);
		if (inet_ntop(AF_INET6, a6, net, sizeof(net)))
			addr = net;
	}
	snprintf(buf, size, "th:rl:%s:a:%s", kinds[kind].name, addr);
}

int limits_take_or_reply(struct http_req *req, enum limit_kind kind)
{
	struct rl_state st;
	char key[96];
	int rc;

	/* a route that anonymous callers may use (a public community's search)
	 * takes from their address's budget, the same size as a user's: behind
	 * one NAT they share it, a signed-in user has their own */
	if (req->user_id)
		limits_key(key, sizeof(key), kind, req->user_id);
	else
		addr_key(key, sizeof(key), kind, req->client_addr ? req->client_addr : "-");
	if (kind == LIMIT_MESSAGE) {
		rc = rl_take(key, limits.msg_interval_ms, limits.msg_burst, 1, 0, &st);
	} else {
		rc = rl_hit(key, limits.window_s[kind], &st);
		if (rc == 0)
			rc = st.count <= limits.max[kind];
	}
	if (rc < 0) {
		/* fail open: see limits.h */
		log_warn("limits: Redis unavailable; %s of %s let through unlimited",
			 kinds[kind].name, key);
		metrics_add(unavailable, 1);
		return 0;
	}
	if (rc == 0) {
		log_info("limits: %s over the %s limit", key, kinds[kind].name);
		rl_reply_limited(req, &st);
		return -1;
	}
	return 0;
}
