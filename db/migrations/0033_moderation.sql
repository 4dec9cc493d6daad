-- Moderation that leaves a record (API.md v1.1 "Moderation"; issue 23):
-- the modlog written by triggers, reports, site admins.
--
-- The modlog no path can skip.  The entry is written by a trigger on the
-- table the action changes, in the statement's transaction, so no route,
-- script or future path can act without it.  The actor is the
-- transaction-local setting townhall.actor_id, which the web library sets
-- at the start of every transaction a signed-in request opens
-- (db_begin_as(), lib/db.h; db_begin_or_reply() in fcgi-apps/lib/reply.c).
-- A moderator action with no actor raises (SQLSTATE TH001): a path that
-- forgot to name its actor fails loudly instead of skipping the log.
-- The value 'operator' names a person at a shell (scripts/admin): the entry
-- is written with actor_id NULL.
--
-- Who acted on what:
--   * posts, comments: a DELETE whose actor is not the author is a removal
--     ('remove_post', 'remove_comment'); the author deleting their own is
--     not logged.  A comment deleted with its replies is logged once, for
--     the comment the actor chose (the one whose parent is still there).
--     Rows a foreign key's cascade deletes are not actions of their own: a
--     post's comments, a community's posts, members and bans, an erased
--     account's posts and memberships.  They are told by what went with
--     them: the post, community, author or user of the row no longer exists
--     when the trigger runs (AFTER triggers see the whole statement's
--     effects; the cascade's own triggers run at the end of the outer
--     statement, with the same trigger depth as a direct delete, so the
--     depth cannot tell).  Only a row that is an action needs an actor.
--   * messages: deleted_at set by someone other than the sender
--     ('remove_message'; a DM's message makes a site-wide entry).  A row
--     whose sender is gone (account erasure) is not a moderator action.
--   * bans: insert or update 'ban', delete 'unban'.
--   * memberships: deleted by someone else 'remove_member' (not when the
--     same transaction banned the user: the 'ban' entry says it); a role
--     set by someone else 'set_role_<role>'.
--   * communities.slow_mode_seconds changed: 'set_slow_mode' (note: the
--     value).
--   * reports resolved: 'report_<action>' for each target, target the
--     report (the lowest id among those resolved together), note the
--     moderator's note; the reporters get 'report_resolved'.
--   * users.suspended_at: 'suspend' / 'unsuspend'; users.is_admin:
--     'grant_admin' / 'revoke_admin' (site-wide entries).
--
-- Site admins act in any community as its owner: community_access() says
-- so (role 'owner', never banned), so lib/policy.c, channel_access() and
-- the broker plugin's cold lookups all agree from this one place.

CREATE OR REPLACE FUNCTION community_access(p_user bigint, p_community bigint)
RETURNS TABLE (is_public boolean, owner_id bigint, role text, banned boolean)
LANGUAGE sql STABLE AS $fn$
    SELECT c.visibility = 'public', c.owner_id,
           CASE WHEN adm.id IS NOT NULL THEN 'owner' ELSE m.role END,
           b.user_id IS NOT NULL AND adm.id IS NULL
    FROM communities c
    LEFT JOIN memberships m ON m.community_id = c.id AND m.user_id = p_user
    LEFT JOIN bans b ON b.community_id = c.id AND b.user_id = p_user
    LEFT JOIN users adm ON adm.id = p_user AND adm.is_admin
    WHERE c.id = p_community
$fn$;

-- The actor of the transaction's moderator action: the user id, NULL for
-- 'operator'; raises when none is set.
CREATE FUNCTION modlog_actor() RETURNS bigint
LANGUAGE plpgsql STABLE AS $fn$
DECLARE
    v text := nullif(current_setting('townhall.actor_id', true), '');
BEGIN
    IF v IS NULL THEN
        RAISE EXCEPTION 'moderator action without an actor (set townhall.actor_id)'
            USING ERRCODE = 'TH001';
    END IF;
    IF v = 'operator' THEN
        RETURN NULL;
    END IF;
    RETURN v::bigint;
END
$fn$;

CREATE FUNCTION modlog_posts_deleted() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
    actor bigint;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM gone g
                   WHERE EXISTS (SELECT 1 FROM communities c WHERE c.id = g.community_id)
                     AND EXISTS (SELECT 1 FROM users u WHERE u.id = g.author_id)) THEN
        RETURN NULL; -- a cascade (the community or the author went)
    END IF;
    actor := modlog_actor();
    INSERT INTO modlog (community_id, actor_id, action, target_type, target_id)
    SELECT g.community_id, actor, 'remove_post', 'post', g.id::text
    FROM gone g
    WHERE g.author_id IS DISTINCT FROM actor
      AND EXISTS (SELECT 1 FROM communities c WHERE c.id = g.community_id)
      AND EXISTS (SELECT 1 FROM users u WHERE u.id = g.author_id);
    RETURN NULL;
END
$fn$;
CREATE TRIGGER modlog_posts_delete AFTER DELETE ON posts
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION modlog_posts_deleted();

-- The chosen comments of a delete: their post and author are there, and
-- their parent (a reply's) too; the replies deleted with them are not.
CREATE FUNCTION modlog_comments_deleted() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
    actor bigint;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM gone g
                   WHERE EXISTS (SELECT 1 FROM posts p WHERE p.id = g.post_id)
                     AND EXISTS (SELECT 1 FROM users u WHERE u.id = g.author_id)
                     AND (g.parent_id IS NULL
                          OR EXISTS (SELECT 1 FROM comments c WHERE c.id = g.parent_id))) THEN
        RETURN NULL; -- a cascade (the post, the author or the parent went)
    END IF;
    actor := modlog_actor();
    INSERT INTO modlog (community_id, actor_id, action, target_type, target_id)
    SELECT p.community_id, actor, 'remove_comment', 'comment', g.id::text
    FROM gone g JOIN posts p ON p.id = g.post_id
    WHERE g.author_id IS DISTINCT FROM actor
      AND EXISTS (SELECT 1 FROM users u WHERE u.id = g.author_id)
      AND (g.parent_id IS NULL OR EXISTS (SELECT 1 FROM comments c WHERE c.id = g.parent_id));
    RETURN NULL;
END
$fn$;
CREATE TRIGGER modlog_comments_delete AFTER DELETE ON comments
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION modlog_comments_deleted();

CREATE FUNCTION modlog_message_deleted() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
    actor bigint;
BEGIN
    IF NEW.sender_id IS NULL THEN
        RETURN NULL;
    END IF;
    actor := modlog_actor();
    IF actor IS DISTINCT FROM NEW.sender_id THEN
        INSERT INTO modlog (community_id, actor_id, action, target_type, target_id)
        SELECT ch.community_id, actor, 'remove_message', 'message', NEW.id::text
        FROM channels ch WHERE ch.id = NEW.channel_id;
    END IF;
    RETURN NULL;
END
$fn$;
CREATE TRIGGER modlog_messages_delete AFTER UPDATE OF deleted_at ON messages
    FOR EACH ROW WHEN (OLD.deleted_at IS NULL AND NEW.deleted_at IS NOT NULL)
    EXECUTE FUNCTION modlog_message_deleted();

CREATE FUNCTION modlog_bans_changed() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
    r bans;
BEGIN
    IF TG_OP = 'DELETE' THEN
        r := OLD;
    ELSE
        r := NEW;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM communities c WHERE c.id = r.community_id)
       OR NOT EXISTS (SELECT 1 FROM users u WHERE u.id = r.user_id) THEN
        RETURN NULL; -- a cascade (the community or the user went)
    END IF;
    INSERT INTO modlog (community_id, actor_id, action, target_type, target_id, note)
    VALUES (r.community_id, modlog_actor(), CASE TG_OP WHEN 'DELETE' THEN 'unban' ELSE 'ban' END,
            'user', r.user_id::text,
            CASE WHEN TG_OP <> 'DELETE' THEN nullif(r.reason, '') END);
    RETURN NULL;
END
$fn$;
CREATE TRIGGER modlog_bans AFTER INSERT OR UPDATE OR DELETE ON bans
    FOR EACH ROW EXECUTE FUNCTION modlog_bans_changed();

CREATE FUNCTION modlog_memberships_changed() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
    actor bigint;
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF NOT EXISTS (SELECT 1 FROM communities c WHERE c.id = OLD.community_id)
           OR NOT EXISTS (SELECT 1 FROM users u WHERE u.id = OLD.user_id) THEN
            RETURN NULL; -- a cascade (the community or the user went)
        END IF;
        actor := modlog_actor();
        IF actor IS DISTINCT FROM OLD.user_id
           AND NOT EXISTS (SELECT 1 FROM bans b WHERE b.community_id = OLD.community_id
                                                  AND b.user_id = OLD.user_id) THEN
            INSERT INTO modlog (community_id, actor_id, action, target_type, target_id)
            VALUES (OLD.community_id, actor, 'remove_member', 'user', OLD.user_id::text);
        END IF;
        RETURN NULL;
    END IF;
    -- a join (the user's own insert as 'member'; a bulk load of members
    -- with no actor, scripts/lib/bench-rt.sh), a community's creation (its
    -- owner) or a level change is no moderator action
    IF TG_OP = 'UPDATE' AND OLD.role IS NOT DISTINCT FROM NEW.role THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'INSERT' AND NEW.role = 'member'
       AND nullif(current_setting('townhall.actor_id', true), '') IS NULL THEN
        RETURN NULL;
    END IF;
    actor := modlog_actor();
    IF actor IS DISTINCT FROM NEW.user_id THEN
        INSERT INTO modlog (community_id, actor_id, action, target_type, target_id)
        VALUES (NEW.community_id, actor, 'set_role_' || NEW.role, 'user', NEW.user_id::text);
    END IF;
    RETURN NULL;
END
$fn$;
CREATE TRIGGER modlog_memberships AFTER INSERT OR UPDATE OF role OR DELETE ON memberships
    FOR EACH ROW EXECUTE FUNCTION modlog_memberships_changed();

CREATE FUNCTION modlog_slow_mode_changed() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    INSERT INTO modlog (community_id, actor_id, action, target_type, target_id, note)
    VALUES (NEW.id, modlog_actor(), 'set_slow_mode', 'community', NEW.id::text,
            NEW.slow_mode_seconds || ' s');
    RETURN NULL;
END
$fn$;
CREATE TRIGGER modlog_slow_mode AFTER UPDATE OF slow_mode_seconds ON communities
    FOR EACH ROW WHEN (OLD.slow_mode_seconds IS DISTINCT FROM NEW.slow_mode_seconds)
    EXECUTE FUNCTION modlog_slow_mode_changed();

CREATE FUNCTION modlog_users_changed() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
    actor bigint := modlog_actor();
BEGIN
    IF OLD.suspended_at IS DISTINCT FROM NEW.suspended_at
       AND (OLD.suspended_at IS NULL OR NEW.suspended_at IS NULL) THEN
        INSERT INTO modlog (community_id, actor_id, action, target_type, target_id)
        VALUES (NULL, actor, CASE WHEN NEW.suspended_at IS NULL THEN 'unsuspend'
                                  ELSE 'suspend' END, 'user', NEW.id::text);
    END IF;
    IF OLD.is_admin IS DISTINCT FROM NEW.is_admin THEN
        INSERT INTO modlog (community_id, actor_id, action, target_type, target_id)
        VALUES (NULL, actor, CASE WHEN NEW.is_admin THEN 'grant_admin' ELSE 'revoke_admin' END,
                'user', NEW.id::text);
    END IF;
    RETURN NULL;
END
$fn$;
CREATE TRIGGER modlog_users AFTER UPDATE OF suspended_at, is_admin ON users
    FOR EACH ROW WHEN ((OLD.suspended_at IS NULL) <> (NEW.suspended_at IS NULL)
                       OR OLD.is_admin IS DISTINCT FROM NEW.is_admin)
    EXECUTE FUNCTION modlog_users_changed();

-- Reports.  community_id is the queue: the target's community; NULL for
-- the site admins' queue (reports of users, and of messages in DMs).
-- target_id is text (bigint or uuid) and no foreign key: a removed post's
-- reports stay, resolved, with their record.  target_author_id is whom a
-- warn or ban acts on.  A reporter's or moderator's erased account leaves
-- the report (SET NULL): the reported content is no less reported.
CREATE TABLE reports (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    community_id     bigint REFERENCES communities (id) ON DELETE CASCADE,
    reporter_id      bigint REFERENCES users (id) ON DELETE SET NULL,
    target_type      text NOT NULL,
    target_id        text NOT NULL,
    target_author_id bigint REFERENCES users (id) ON DELETE SET NULL,
    reason           text NOT NULL,
    note             text NOT NULL DEFAULT '',
    status           text NOT NULL DEFAULT 'open',
    created_at       timestamptz NOT NULL DEFAULT now(),
    resolved_at      timestamptz,
    resolved_by      bigint REFERENCES users (id) ON DELETE SET NULL,
    resolution       text,
    resolution_note  text,
    CONSTRAINT reports_target_type_check CHECK (target_type IN ('post', 'comment', 'message', 'user')),
    CONSTRAINT reports_target_id_check CHECK (char_length(target_id) BETWEEN 1 AND 64),
    CONSTRAINT reports_reason_check CHECK (reason IN ('spam', 'harassment', 'illegal', 'other')),
    CONSTRAINT reports_note_check CHECK (char_length(note) <= 1000),
    CONSTRAINT reports_status_check CHECK (status IN ('open', 'resolved')),
    CONSTRAINT reports_resolution_check CHECK (
        (status = 'open' AND resolution IS NULL)
        OR (status = 'resolved' AND resolution IN ('dismiss', 'remove', 'ban', 'warn'))),
    CONSTRAINT reports_resolution_note_check CHECK (char_length(resolution_note) <= 1000)
);
-- one open report per reporter and target
CREATE UNIQUE INDEX reports_open_once ON reports (reporter_id, target_type, target_id)
    WHERE status = 'open';
-- a queue oldest first; the site queue likewise
CREATE INDEX reports_queue_idx ON reports (community_id, status, id);
CREATE INDEX reports_site_idx ON reports (status, id) WHERE community_id IS NULL;
CREATE INDEX reports_target_idx ON reports (target_type, target_id) WHERE status = 'open';
CREATE INDEX reports_reporter_idx ON reports (reporter_id) WHERE reporter_id IS NOT NULL;

-- 'warning': a moderator's warning to the author of reported content
-- (a report resolved with 'warn').
ALTER TABLE notifications DROP CONSTRAINT notifications_type_check,
    ADD CONSTRAINT notifications_type_check CHECK (type IN
        ('mention', 'reply', 'dm', 'call', 'role', 'ban', 'post', 'report_resolved', 'warning'));

-- Reports resolved: one modlog entry per target, a report_resolved
-- notification to each reporter, and for 'warn' a warning to the author.
CREATE FUNCTION reports_resolved() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
    actor bigint;
    t record;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM now_t n JOIN then_t o ON o.id = n.id
                   WHERE o.status = 'open' AND n.status = 'resolved') THEN
        RETURN NULL;
    END IF;
    actor := modlog_actor();
    FOR t IN
        SELECT DISTINCT ON (n.target_type, n.target_id) n.*
        FROM now_t n JOIN then_t o ON o.id = n.id
        WHERE o.status = 'open' AND n.status = 'resolved'
        ORDER BY n.target_type, n.target_id, n.id
    LOOP
        INSERT INTO modlog (community_id, actor_id, action, target_type, target_id, note)
        VALUES (t.community_id, actor, 'report_' || t.resolution, 'report', t.id::text,
                t.resolution_note);
        IF t.resolution = 'warn' THEN
            PERFORM notify(ARRAY[t.target_author_id], 'warning', actor, t.community_id,
                           CASE WHEN t.target_type = 'post' THEN t.target_id::bigint END,
                           CASE WHEN t.target_type = 'comment' THEN t.target_id::bigint END,
                           NULL,
                           CASE WHEN t.target_type = 'message' THEN t.target_id::uuid END,
                           NULL);
        END IF;
    END LOOP;
    -- the reporters (a removed post or comment is not referenced: its
    -- notification would go with it)
    PERFORM notify(array_agg(n.reporter_id), 'report_resolved', actor, n.community_id, NULL,
                   NULL, NULL,
                   CASE WHEN n.target_type = 'message' THEN n.target_id::uuid END, NULL)
    FROM now_t n JOIN then_t o ON o.id = n.id
    WHERE o.status = 'open' AND n.status = 'resolved'
    GROUP BY n.community_id, n.target_type, n.target_id;
    RETURN NULL;
END
$fn$;
-- (an account's erasure sets its ids null: an update, no resolution)
CREATE TRIGGER reports_resolve AFTER UPDATE ON reports
    REFERENCING OLD TABLE AS then_t NEW TABLE AS now_t
    FOR EACH STATEMENT EXECUTE FUNCTION reports_resolved();

-- The public user object of API.md ({id, username, display_name,
-- created_at}), or NULL: what the JSON below name people with.
CREATE FUNCTION user_brief(p_user bigint) RETURNS jsonb
LANGUAGE sql STABLE AS $fn$
    SELECT jsonb_build_object('id', u.id, 'username', u.username,
               'display_name', u.display_name, 'created_at',
               to_char(u.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))
    FROM users u WHERE u.id = p_user
$fn$;

CREATE FUNCTION th_time(t timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE AS $fn$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
$fn$;

-- A modlog entry as GET …/modlog shows it; the note only when p_notes.
CREATE FUNCTION modlog_json(m modlog, p_notes boolean) RETURNS jsonb
LANGUAGE sql STABLE AS $fn$
    SELECT jsonb_build_object('id', m.id, 'community_id', m.community_id,
        'actor', user_brief(m.actor_id), 'action', m.action,
        'target', jsonb_build_object('type', m.target_type, 'id',
            CASE WHEN m.target_id ~ '^[0-9]{1,18}$' THEN to_jsonb(m.target_id::bigint)
                 ELSE to_jsonb(m.target_id) END),
        'note', CASE WHEN p_notes THEN m.note END,
        'created_at', th_time(m.created_at))
$fn$;

-- A report as the queue shows it: the target's current content (null when
-- it is gone) and its earlier versions, oldest first (posts and messages
-- keep them, 0020; comments are not edited).
CREATE FUNCTION report_json(r reports) RETURNS jsonb
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
                      FROM users u WHERE u.id = r.target_id::bigint) END,
            'history', CASE r.target_type
                WHEN 'post' THEN (SELECT coalesce(jsonb_agg(jsonb_build_object(
                                      'title', e.title, 'body', e.body,
                                      'written_at', th_time(e.written_at),
                                      'replaced_at', th_time(e.replaced_at)) ORDER BY e.id), '[]')
                                  FROM post_edits e WHERE e.post_id = r.target_id::bigint)
                WHEN 'message' THEN (SELECT coalesce(jsonb_agg(jsonb_build_object(
                                         'body', e.body, 'written_at', th_time(e.written_at),
                                         'replaced_at', th_time(e.replaced_at)) ORDER BY e.id),
                                         '[]')
                                     FROM message_edits e WHERE e.message_id = r.target_id::uuid)
                ELSE '[]'::jsonb END))
$fn$;
