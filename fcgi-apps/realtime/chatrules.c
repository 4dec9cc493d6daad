/* chatrules: a community's slow mode and content limits on a message posted
 * over REST, by the rule the broker applies to a chat publish
 * (lib/modrule.h): 400 validation_failed naming the limit, 429 rate_limited
 * with Retry-After for slow mode; moderators and above, site admins and DM
 * channels are exempt. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "modrule.h"
#include "realtime.h"
#include "reply.h"

/* The community's rules and whether the caller is a site admin (one
 * query); -1 replied. */
static int rules_load(struct http_req *req, int64_t cid, struct modrule *m, int *admin)
{
	char c[24], u[24];
	const char *params[] = {ids_text(c, cid), ids_text(u, req->user_id)};
	struct db_res *r;

	modrule_default(m);
	*admin = 0;
	r = db_exec_or_reply(req, DB_PRIMARY,
			     "SELECT c.slow_mode_seconds, c.max_message_length, c.links_allowed, "
			     "u.is_admin FROM communities c CROSS JOIN users u "
			     "WHERE c.id = $1 AND u.id = $2",
			     2, params);
	if (!r)
		return -1;
	if (db_res_rows(r) == 1) {
		m->slow_s = strtol(db_res_get(r, 0, 0), NULL, 10);
		m->max_len = strtol(db_res_get(r, 0, 1), NULL, 10);
		m->links = strcmp(db_res_get(r, 0, 2), "t") == 0;
		*admin = strcmp(db_res_get(r, 0, 3), "t") == 0;
	}
	return 0;
}

int chatrules_load(struct http_req *req, const struct rt_channel *ch, struct chatrules *cr)
{
	int admin;

	modrule_default(&cr->m);
	cr->exempt = 1;
	/* moderators and above need no query; a DM has no rules */
	if (ch->cm.dm || ch->cm.my_role >= ROLE_MODERATOR)
		return 0;
	if (rules_load(req, ch->cm.id, &cr->m, &admin) < 0)
		return -1;
	cr->exempt = admin || modrule_is_default(&cr->m);
	return 0;
}

int chatrules_body_or_reply(struct http_req *req, const struct chatrules *cr, const char *body)
{
	enum modrule_why why;

	if (cr->exempt)
		return 0;
	why = modrule_body(&cr->m, body, strlen(body));
	if (why == MODRULE_OK)
		return 0;
	http_reply_error(req, TH_EVALIDATION, modrule_why_text(why), "body");
	return -1;
}

int chatrules_slow_or_reply(struct http_req *req, const struct chatrules *cr, int64_t channel_id,
			    const char *id)
{
	char secs[24];
	long long left_ms;
	int rc;

	if (cr->exempt || cr->m.slow_s <= 0)
		return 0;
	rc = modrule_slow_take(channel_id, req->user_id, cr->m.slow_s, id, &left_ms);
	if (rc < 0) {
		http_reply_error(req, TH_EUNAVAILABLE, "cache unavailable", NULL);
		return -1;
	}
	if (rc == 1)
		return 0;
	snprintf(secs, sizeof(secs), "%lld", (left_ms + 999) / 1000);
	http_reply_error(req, TH_ERATELIMITED,
			 "slow mode: one message per channel per slow_mode_seconds", NULL);
	http_set_header(req, "Retry-After", secs);
	return -1;
}
