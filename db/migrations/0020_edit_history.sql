-- Edit history: every edit of a post or a message keeps the body it
-- replaced (API.md "Moderation": GET /api/posts/:id/history and
-- GET /api/messages/:id/history, for the author and moderators).
--
-- Triggers keep it, not the handlers: every path that edits (the REST
-- routes today, any later one) records the earlier version in the same
-- transaction, and none can forget.  A row is the version that was replaced:
-- its text, when it was written (the item's created_at or previous
-- edited_at) and when it was replaced.
--
-- At most EDIT_MAX (100) earlier versions per item: the 101st edit is
-- refused with a check violation (the apps answer 400 validation_failed),
-- so one author cannot grow one item's history without bound.
-- A deleted message keeps no history (its author took it back): the
-- deletion that blanks the body removes its earlier versions too.

CREATE TABLE post_edits (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    post_id     bigint NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    title       text NOT NULL,
    body        text NOT NULL,
    written_at  timestamptz NOT NULL,
    replaced_at timestamptz NOT NULL DEFAULT now()
);
-- a post's versions newest first, keyset by id
CREATE INDEX post_edits_post_id ON post_edits (post_id, id);

CREATE TABLE message_edits (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id  uuid NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    body        text NOT NULL,
    written_at  timestamptz NOT NULL,
    replaced_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX message_edits_message_id ON message_edits (message_id, id);

CREATE FUNCTION post_edits_keep() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    IF (SELECT count(*) FROM (SELECT 1 FROM post_edits WHERE post_id = OLD.id LIMIT 100) v) >= 100 THEN
        RAISE EXCEPTION 'a post keeps at most 100 earlier versions'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'post_edits_limit';
    END IF;
    INSERT INTO post_edits (post_id, title, body, written_at)
    VALUES (OLD.id, OLD.title, OLD.body, COALESCE(OLD.edited_at, OLD.created_at));
    RETURN NEW;
END
$fn$;

CREATE TRIGGER posts_keep_edit BEFORE UPDATE OF title, body ON posts
    FOR EACH ROW
    WHEN (OLD.title IS DISTINCT FROM NEW.title OR OLD.body IS DISTINCT FROM NEW.body)
    EXECUTE FUNCTION post_edits_keep();

CREATE FUNCTION message_edits_keep() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    IF NEW.deleted_at IS NOT NULL THEN
        -- a deletion: the earlier versions go with the body
        DELETE FROM message_edits WHERE message_id = OLD.id;
        RETURN NEW;
    END IF;
    IF (SELECT count(*) FROM (SELECT 1 FROM message_edits WHERE message_id = OLD.id LIMIT 100) v) >= 100 THEN
        RAISE EXCEPTION 'a message keeps at most 100 earlier versions'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'message_edits_limit';
    END IF;
    INSERT INTO message_edits (message_id, body, written_at)
    VALUES (OLD.id, OLD.body, COALESCE(OLD.edited_at, OLD.created_at));
    RETURN NEW;
END
$fn$;

CREATE TRIGGER messages_keep_edit BEFORE UPDATE OF body, deleted_at ON messages
    FOR EACH ROW
    WHEN (OLD.deleted_at IS NULL AND
          (OLD.body IS DISTINCT FROM NEW.body OR NEW.deleted_at IS NOT NULL))
    EXECUTE FUNCTION message_edits_keep();
