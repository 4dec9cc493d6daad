/* history: GET /api/posts/:id/history — a post's earlier versions, for its
 * author and the moderators of its community. */
#include "community.h"
#include "history.h"
#include "ids.h"
#include "posts.h"
#include "reply.h"

void posts_history(struct http_req *req)
{
	struct community c;
	struct post_ref p;
	char pid[24];

	if (post_access_or_reply(req, "id", DB_PRIMARY, ROLE_NONE, &c, &p) < 0)
		return;
	/* the author may always look; anyone else moderates here (lib/policy) */
	if (p.author_id != req->user_id &&
	    policy_check_or_reply(req, &c, ROLE_MODERATOR, "post") < 0)
		return;
	history_reply(req, HISTORY_POST, ids_text(pid, p.id));
}
