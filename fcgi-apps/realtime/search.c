/* search: GET /api/messages/search?q=&channel_id= | &community_id= —
 * messages the caller may read, ranked by full-text relevance, by the rules
 * of fcgi-apps/lib/textsearch.h (the same as post search).
 *
 * Scope: one channel (its readers, as its history), or every channel of a
 * community (its readers).  Deleted messages never match (their body is
 * "").  Order: rank desc, then channel desc, seq desc; the cursor holds the
 * three.  messages.search is a stored tsvector with a GIN index (migration
 * 0021).  Reads on the primary, as history: a message just seen over MQTT
 * is found. */
#include <stdlib.h>

#include "textsearch.h"
#include "jh.h"
#include "userlimits.h"
#include "page.h"
#include "realtime.h"
#include "reply.h"

/* The matches of tsquery q in scope `where` (on messages m), with rank rk,
 * then their rows, after the cursor ($3, $4, $5), limit $6 */
#define SEARCH_SQL(from, where)                                                                    \
	"SELECT " MSG_COLS                                                                         \
	", s.rk FROM (SELECT m.id, " FTS_RANK_SQL("m.search",                                      \
						  "q") " AS rk FROM messages m" from               \
						       ", " FTS_QUERY_SQL(                         \
							       "$2") " q WHERE " where             \
								     " AND m.search @@ q) s "      \
								     "JOIN messages m ON m.id = "  \
								     "s.id "                       \
								     "LEFT JOIN users u ON u.id "  \
								     "= "                          \
								     "m.sender_id "                \
								     "WHERE (s.rk, m.channel_id, " \
								     "m.seq) < ($3::bigint, "      \
								     "$4::bigint, $5::bigint) "    \
								     "ORDER BY s.rk DESC, "        \
								     "m.channel_id DESC, m.seq "   \
								     "DESC LIMIT $6"

static const char *const channel_sql = SEARCH_SQL("", "m.channel_id = $1");
static const char *const community_sql = SEARCH_SQL(" JOIN channels c ON c.id = m.channel_id",
						    "c.community_id = $1");

void messages_search(struct http_req *req)
{
	const char *chs = http_query(req, "channel_id"), *cms = http_query(req, "community_id");
	/* the cursor: rank, channel, seq of the last message */
	static const int key_cols[] = {MSG_C_DELETED + 1, MSG_C_CHANNEL, MSG_C_SEQ};
	struct rt_channel ch;
	struct community c;
	struct page pg;
	char scope[24];
	const char *q;
	struct db_res *r;
	int64_t id;

	if ((chs != NULL) == (cms != NULL)) {
		http_reply_error(req, TH_EVALIDATION,
				 "give exactly one of channel_id, community_id",
				 chs ? "community_id" : "channel_id");
		return;
	}
	if (jh_id_or_404(req, chs ? chs : cms, &id) < 0)
		return;
	if (chs) {
		if (channel_access(req, id, ROLE_NONE, &ch) < 0)
			return;
	} else if (policy_load(req, id, &c) < 0 ||
		   policy_check_or_reply(req, &c, ROLE_NONE, "community") < 0) {
		return;
	}
	if (!(q = fts_q_or_400(req)) || page_parse_or_400(req, 3, INT64_MAX, &pg) < 0 ||
	    limits_take_or_reply(req, LIMIT_SEARCH) < 0)
		return;
	{
		const char *params[] = {ids_text(scope, id), q,           pg.key_s[0],
					pg.key_s[1],         pg.key_s[2], pg.limit_s};

		r = db_exec_or_reply(req, DB_PRIMARY, chs ? channel_sql : community_sql, 6, params);
	}
	if (!r)
		return;
	page_reply_keys(req, &pg, r, 3, key_cols, message_row, NULL);
}
