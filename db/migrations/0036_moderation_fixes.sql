-- Fixes to the modlog's triggers (0033) once account erasure (0032) and the
-- chat rules (0035) are there beside them.
--
-- 1. Erasing a moderator deleted their user row, whose ON DELETE SET NULL
--    of bans.banned_by is an UPDATE of bans: the trigger took it for a new
--    ban by the erased actor and failed (the erasure with it).  Only a
--    change of the ban itself (its reason) is a moderator action.
-- 2. Posts and comments outlive their author since 0032 (author_id SET
--    NULL): a removal of an erased author's post is a removal like any
--    other.  Only what went with its community, post or parent comment is a
--    cascade.  Messages likewise: a message with no sender removed by a
--    moderator is logged.
-- 3. A report resolved after its target was deleted (or its DM channel
--    went) failed on the notifications' foreign keys: the refs are given
--    only while the target exists.
-- 4. The chat rules of 0035 (max_message_length, links_allowed) change by
--    the same PATCH as slow mode and are logged the same way
--    ('set_content_limits', the values in the note).
-- 5. reports.target_id becomes NULL when the reported account is erased
--    (as modlog.target_id does).
-- 6. A community's creation inserts its owner's membership: no moderator
--    action, whoever runs it (a seeding script with no actor failed).

CREATE OR REPLACE FUNCTION modlog_bans_changed() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
    r bans;
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.reason IS NOT DISTINCT FROM NEW.reason THEN
        RETURN NULL; -- banned_by set NULL by an erasure: no action
    END IF;
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
DROP TRIGGER modlog_bans ON bans;
CREATE TRIGGER modlog_bans AFTER INSERT OR UPDATE OF reason OR DELETE ON bans
    FOR EACH ROW EXECUTE FUNCTION modlog_bans_changed();

CREATE OR REPLACE FUNCTION modlog_posts_deleted() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
    actor bigint;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM gone g
                   WHERE EXISTS (SELECT 1 FROM communities c WHERE c.id = g.community_id)) THEN
        RETURN NULL; -- a cascade (the community went)
    END IF;
    actor := modlog_actor();
    INSERT INTO modlog (community_id, actor_id, action, target_type, target_id)
    SELECT g.community_id, actor, 'remove_post', 'post', g.id::text
    FROM gone g
    WHERE g.author_id IS DISTINCT FROM actor
      AND EXISTS (SELECT 1 FROM communities c WHERE c.id = g.community_id);
    RETURN NULL;
END
$fn$;

CREATE OR REPLACE FUNCTION modlog_comments_deleted() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
    actor bigint;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM gone g
                   WHERE EXISTS (SELECT 1 FROM posts p WHERE p.id = g.post_id)
                     AND (g.parent_id IS NULL
                          OR EXISTS (SELECT 1 FROM comments c WHERE c.id = g.parent_id))) THEN
        RETURN NULL; -- a cascade (the post or the parent went)
    END IF;
    actor := modlog_actor();
    INSERT INTO modlog (community_id, actor_id, action, target_type, target_id)
    SELECT p.community_id, actor, 'remove_comment', 'comment', g.id::text
    FROM gone g JOIN posts p ON p.id = g.post_id
    WHERE g.author_id IS DISTINCT FROM actor
      AND (g.parent_id IS NULL OR EXISTS (SELECT 1 FROM comments c WHERE c.id = g.parent_id));
    RETURN NULL;
END
$fn$;

CREATE OR REPLACE FUNCTION modlog_message_deleted() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
    actor bigint := modlog_actor();
BEGIN
    IF actor IS DISTINCT FROM NEW.sender_id THEN
        INSERT INTO modlog (community_id, actor_id, action, target_type, target_id)
        SELECT ch.community_id, actor, 'remove_message', 'message', NEW.id::text
        FROM channels ch WHERE ch.id = NEW.channel_id;
    END IF;
    RETURN NULL;
END
$fn$;

CREATE OR REPLACE FUNCTION reports_resolved() RETURNS trigger
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
            -- refs only to what is still there (the author may have deleted it)
            PERFORM notify(ARRAY[t.target_author_id], 'warning', actor, t.community_id,
                           (SELECT p.id FROM posts p WHERE t.target_type = 'post'
                                AND p.id = t.target_id::bigint),
                           (SELECT c.id FROM comments c WHERE t.target_type = 'comment'
                                AND c.id = t.target_id::bigint),
                           NULL,
                           (SELECT m.id FROM messages m WHERE t.target_type = 'message'
                                AND m.id = t.target_id::uuid),
                           NULL);
        END IF;
    END LOOP;
    -- the reporters (a removed post or comment is not referenced: its
    -- notification would go with it; a message only while it exists)
    PERFORM notify(array_agg(n.reporter_id), 'report_resolved', actor, n.community_id, NULL,
                   NULL, NULL,
                   (SELECT m.id FROM messages m WHERE n.target_type = 'message'
                        AND m.id = n.target_id::uuid), NULL)
    FROM now_t n JOIN then_t o ON o.id = n.id
    WHERE o.status = 'open' AND n.status = 'resolved'
    GROUP BY n.community_id, n.target_type, n.target_id;
    RETURN NULL;
END
$fn$;

CREATE OR REPLACE FUNCTION modlog_slow_mode_changed() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
    actor bigint := modlog_actor();
BEGIN
    IF OLD.slow_mode_seconds IS DISTINCT FROM NEW.slow_mode_seconds THEN
        INSERT INTO modlog (community_id, actor_id, action, target_type, target_id, note)
        VALUES (NEW.id, actor, 'set_slow_mode', 'community', NEW.id::text,
                NEW.slow_mode_seconds || ' s');
    END IF;
    IF OLD.max_message_length IS DISTINCT FROM NEW.max_message_length
       OR OLD.links_allowed IS DISTINCT FROM NEW.links_allowed THEN
        INSERT INTO modlog (community_id, actor_id, action, target_type, target_id, note)
        VALUES (NEW.id, actor, 'set_content_limits', 'community', NEW.id::text,
                'max_message_length ' || NEW.max_message_length
                || ', links_allowed ' || NEW.links_allowed);
    END IF;
    RETURN NULL;
END
$fn$;
DROP TRIGGER modlog_slow_mode ON communities;
CREATE TRIGGER modlog_chat_rules
    AFTER UPDATE OF slow_mode_seconds, max_message_length, links_allowed ON communities
    FOR EACH ROW WHEN (OLD.slow_mode_seconds IS DISTINCT FROM NEW.slow_mode_seconds
                       OR OLD.max_message_length IS DISTINCT FROM NEW.max_message_length
                       OR OLD.links_allowed IS DISTINCT FROM NEW.links_allowed)
    EXECUTE FUNCTION modlog_slow_mode_changed();

CREATE OR REPLACE FUNCTION modlog_memberships_changed() RETURNS trigger
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
    -- owner's membership) or a level change is no moderator action
    IF TG_OP = 'UPDATE' AND OLD.role IS NOT DISTINCT FROM NEW.role THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'INSERT' AND NEW.role = 'member'
       AND nullif(current_setting('townhall.actor_id', true), '') IS NULL THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'INSERT' AND NEW.role = 'owner'
       AND EXISTS (SELECT 1 FROM communities c WHERE c.id = NEW.community_id
                   AND c.owner_id = NEW.user_id) THEN
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

ALTER TABLE reports ALTER COLUMN target_id DROP NOT NULL;
