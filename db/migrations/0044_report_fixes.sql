-- Fixes to reports (0033, 0036).
--
-- 1. A report no longer carries its target's earlier versions
--    (target.history).  report_json() made every report response, the
--    reporter's own 201 included: anyone who could see a post or message
--    could report it and read every earlier title and body, which
--    GET /api/posts/:id/history refuses them (its author or moderator+,
--    API.md).  And every queue item carried them all, unpaged: up to 100
--    versions of 40,000 chars (0020) per report, a queue page of 100
--    reports hundreds of MB.  A report shows the target as it is now;
--    content.edited_at (posts, messages) says there are earlier versions,
--    and moderators page through them at GET /api/posts/:id/history and
--    GET /api/messages/:id/history.  Every report is then bounded by its
--    target's current content.
-- 2. A reported message's id is stored in one spelling, lower case, as
--    PostgreSQL prints a uuid (fcgi-apps/community/reports.c; the API takes
--    either case).  The one-open-report index (reports_open_once) and the
--    resolution of every open report of a target compare the text: four
--    spellings of one id made four open reports of one reporter, and
--    resolving one left the others open.  The rows stored so far are
--    normalized below, and a CHECK keeps it so.

CREATE OR REPLACE FUNCTION report_json(r reports) RETURNS jsonb
LANGUAGE sql STABLE AS $fn$
    SELECT jsonb_build_object('id', r.id, 'community_id', r.community_id,
        'reporter', user_brief(r.reporter_id), 'reason', r.reason, 'note', r.note,
        'status', r.status, 'created_at', th_time(r.created_at),
        'resolved_at', th_time(r.resolved_at), 'resolved_by', user_brief(r.resolved_by),
        'resolution', r.resolution, 'resolution_note', r.resolution_note,
        'target', jsonb_build_object('type', r.target_type,
            'id', CASE WHEN r.target_type = 'message' THEN to_jsonb(r.target_id)
                       ELSE to_jsonb(r.target_id::bigint) END,
            'author', user_brief(r.target_author_id),
            'content', CASE r.target_type
                WHEN 'post' THEN (SELECT jsonb_build_object('title', p.title, 'body', p.body,
                                      'post_id', p.id, 'edited_at', th_time(p.edited_at))
                                  FROM posts p WHERE p.id = r.target_id::bigint)
                WHEN 'comment' THEN (SELECT jsonb_build_object('body', c.body,
                                         'post_id', c.post_id)
                                     FROM comments c WHERE c.id = r.target_id::bigint)
                WHEN 'message' THEN (SELECT jsonb_build_object('body', m.body,
                                         'channel_id', m.channel_id,
                                         'edited_at', th_time(m.edited_at),
                                         'deleted_at', th_time(m.deleted_at))
                                     FROM messages m WHERE m.id = r.target_id::uuid)
                ELSE (SELECT jsonb_build_object('username', u.username,
                                                'display_name', u.display_name)
                      FROM users u WHERE u.id = r.target_id::bigint) END))
$fn$;

-- 2. The reports of messages, lower case.  Resolved ones are outside the
-- unique index, and so are open ones with no reporter (an erased account's:
-- NULLs are distinct there); those may simply be lowered.  An open report
-- whose reporter has another open one of the same message in another
-- spelling would break the index once lowered: the oldest of them stays
-- open, the others are what the index forbids, duplicates, and are
-- dismissed as such.  That is a resolution like any other, by the operator
-- (a modlog entry per message with a null actor, as scripts/admin writes; the
-- reporters' report_resolved: 0033's trigger), not a silent delete of what
-- a user wrote.
SET LOCAL townhall.actor_id = 'operator';

WITH dup AS (
    SELECT id, min(id) OVER (PARTITION BY reporter_id, lower(target_id)) AS kept
    FROM reports
    WHERE target_type = 'message' AND status = 'open' AND reporter_id IS NOT NULL
)
UPDATE reports r
SET status = 'resolved', resolution = 'dismiss', resolved_at = now(),
    resolution_note = 'duplicate of report ' || d.kept
                      || ' (the same message id in other letter case)',
    target_id = lower(r.target_id)
FROM dup d
WHERE d.id = r.id AND d.id <> d.kept;

-- now at most one open report per reporter and lowered id: none collides
UPDATE reports SET target_id = lower(target_id)
WHERE target_type = 'message' AND target_id <> lower(target_id);

ALTER TABLE reports ADD CONSTRAINT reports_message_id_check
    CHECK (target_type <> 'message' OR target_id = lower(target_id));
