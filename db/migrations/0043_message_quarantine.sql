-- Chat messages the bridge could not store: a message that makes
-- message_store() fail on its own (a trigger's exception, a constraint, its
-- statement timeout) while PostgreSQL is sound.  The bridge retries a failed
-- batch in halves down to single messages; one that still fails lands here,
-- its PUBACK goes and its sender gets {"type":"refused","reason":
-- "store_failed"}, so it costs nobody else (realtime-bridge/bridge/main.c).
-- No foreign keys and no checks: the insert must not fail for what made the
-- message fail.  One row per id: a client that sends the same message again
-- adds to attempts, nothing more (the table stays bounded by distinct ids).
-- An operator replays a row after fixing the cause (docs/operations.md).
CREATE TABLE message_quarantine (
    id         uuid PRIMARY KEY,         -- the message's own (client-chosen) id
    channel_id bigint NOT NULL,
    sender_id  bigint NOT NULL,
    body       text   NOT NULL,
    reply_to   uuid,
    sqlstate   text   NOT NULL,          -- of the last failure
    error      text   NOT NULL,          -- its message, as PostgreSQL wrote it
    attempts   integer NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX message_quarantine_created ON message_quarantine (created_at);
CREATE INDEX message_quarantine_sender ON message_quarantine (sender_id);

-- No foreign key, so account_erase() (0032) would leave an erased user's text
-- here: it goes with the user's row instead.
CREATE FUNCTION message_quarantine_user_gone() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    DELETE FROM message_quarantine WHERE sender_id = OLD.id;
    RETURN NULL;
END
$fn$;
CREATE TRIGGER message_quarantine_user_gone AFTER DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION message_quarantine_user_gone();
