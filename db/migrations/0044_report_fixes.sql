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
