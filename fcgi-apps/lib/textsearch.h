/* textsearch (prefix fts_; not fts.h, a glibc header): the full-text search
 * rules every search route shares (posts of a community, messages of a
 * channel or a community), so that they parse and rank the same way.
 *
 * q (1-200 characters, no control characters) goes to
 * websearch_to_tsquery('simple', q) as a parameter: it accepts any text
 * (quotes, OR, -word, stray operators like "&|!():*") without a syntax
 * error, and no SQL is ever built from it.  'simple': no language guess, so
 * any language is matched word for word (the stored tsvectors are 'simple'
 * too).  Order: rank descending, then the list's own tie-breakers.  Keyset
 * cursors hold integers (page.h), so the rank is carried as
 * round(rank * 1e9) — the same SQL expression for the ORDER BY and for the
 * cursor's comparison, so a cursor names exactly one place in the order
 * whatever the float rounding.  Ranking needs every match in scope (the rank
 * is not indexable): one page costs O(matches), bounded by the statement
 * timeout. */
#ifndef TH_TEXTSEARCH_H
#define TH_TEXTSEARCH_H

#include "http.h"

#define FTS_Q_MAX 200

/* The tsquery of the SQL parameter p (e.g. "$2"). */
#define FTS_QUERY_SQL(p) "websearch_to_tsquery('simple', " p ")"
/* The rank of tsvector v for tsquery q as a bigint key. */
#define FTS_RANK_SQL(v, q) "(ts_rank(" v ", " q ")::float8 * 1e9)::bigint"

/* The q parameter, or NULL with 400 validation_failed (field q) replied. */
const char *fts_q_or_400(struct http_req *req);

#endif
