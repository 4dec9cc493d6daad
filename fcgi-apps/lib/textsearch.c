/* fts: the query parameter of the search routes. */
#include "textsearch.h"

#include <string.h>

#include "jh.h"

const char *fts_q_or_400(struct http_req *req)
{
	const char *q = http_query(req, "q");
	size_t len = q ? strlen(q) : 0;
	long n = q ? jh_utf8_len(q, len) : -1;

	if (!q || n < 1 || n > FTS_Q_MAX || jh_has_control(q, len, false)) {
		http_reply_error(req, TH_EVALIDATION,
				 "q must be 1 to 200 characters without control characters", "q");
		return NULL;
	}
	return q;
}
