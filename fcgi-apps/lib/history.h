/* history: the earlier versions of an edited item, kept by the database
 * (db/migrations/0020_edit_history.sql), as a page for
 * GET /api/posts/:id/history and GET /api/messages/:id/history.
 *
 * The caller checks who may see them (the author, or a moderator+ of the
 * item's community) before calling. */
#ifndef TH_HISTORY_H
#define TH_HISTORY_H

#include "http.h"

enum history_kind { HISTORY_POST, HISTORY_MESSAGE };

/* Replies 200 with {"items": [...], "next_cursor"} newest first: each item
 * {"version", "title" (posts only), "body", "written_at", "replaced_at"},
 * version 1 being the item as first written; ?limit and ?cursor as every
 * list.  item_id: the post id (decimal) or the message id (UUID), already
 * checked.  Replies an error itself otherwise. */
void history_reply(struct http_req *req, enum history_kind kind, const char *item_id);

#endif
