/* history: GET /api/messages/:id/history — a message's earlier versions,
 * for its sender and the moderators of its community. */
#include "history.h"
#include "realtime.h"

void messages_history(struct http_req *req)
{
	struct rt_channel ch;
	struct msg_ref m;

	if (message_access(req, &m, &ch) < 0)
		return;
	/* the sender may always look; anyone else moderates here (lib/policy) */
	if (m.sender_id != req->user_id && channel_check(req, &ch, ROLE_MODERATOR, "message") < 0)
		return;
	if (m.deleted) {
		/* its earlier versions went with it (migration 0020) */
		http_reply_error(req, TH_ENOTFOUND, "the message is deleted", NULL);
		return;
	}
	history_reply(req, HISTORY_MESSAGE, m.id);
}
