-- Web Push (API.md v1.1 "Mentions and notifications", the Web Push
-- paragraph; issue 21 point 4).
--
-- push_subscriptions: a browser's PushSubscription (endpoint, the p256dh
-- key and auth secret of RFC 8291), written by PUT /api/push/subscriptions
-- (fcgi-apps/realtime/push.c).  An endpoint is one browser: unique, and
-- taken over by whoever registers it last.  At most 10 a user (the app
-- replaces the oldest).
--
-- push_outbox: one row per (notification, subscription), written by the
-- trigger below in the statement that creates the notification, so a push
-- exists exactly when its notification committed.  th-pusher
-- (fcgi-apps/push) claims due rows for a lease (FOR UPDATE SKIP LOCKED,
-- lib/outbox.c, as th-mailer does with mail_outbox), drops a row whose
-- user has a live connection (presence in Redis: the inbox event reaches
-- them), else encrypts and POSTs it to the endpoint; a 404/410 deletes the
-- subscription (its other rows are dropped when claimed); a retryable failure moves
-- next_at by a jittered exponential backoff; after the last attempt the row
-- is deleted (counted and logged: a late push is worth nothing).  Woken by pg_notify('townhall_push') at commit.

CREATE TABLE push_subscriptions (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id    bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    endpoint   text NOT NULL UNIQUE CHECK (char_length(endpoint) BETWEEN 12 AND 1024),
    p256dh     bytea NOT NULL CHECK (octet_length(p256dh) = 65),
    auth       bytea NOT NULL CHECK (octet_length(auth) = 16),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX push_subscriptions_user_idx ON push_subscriptions (user_id, id);

CREATE TABLE push_outbox (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- no foreign key: the action that notifies must not lock (KEY SHARE) the
    -- rows a PUT or DELETE of subscriptions locks; a row whose subscription
    -- went is dropped by the sender when it claims it
    subscription_id bigint NOT NULL,
    user_id         bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- no length CHECK: a notification must never fail for its push; the
    -- sender fails a row too long for one record (lib/webpush.h)
    payload         jsonb NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    next_at         timestamptz NOT NULL DEFAULT now(),
    attempts        integer NOT NULL DEFAULT 0,
    claimed_by      text,
    claimed_until   timestamptz,
    failed_at       timestamptz,
    last_error      text CHECK (char_length(last_error) <= 512)
);
CREATE INDEX push_outbox_due_idx ON push_outbox (next_at) WHERE failed_at IS NULL;
CREATE INDEX push_outbox_subscription_idx ON push_outbox (subscription_id);
CREATE INDEX push_outbox_user_idx ON push_outbox (user_id);

-- A push row for each subscription of each user a statement notified, in
-- that statement (a statement-level trigger with the new rows, so whatever
-- defines notify(): 0024, 0028 and later), and the senders woken at commit.
-- A user with no subscription costs one index probe of the join.
CREATE FUNCTION notifications_push() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
    pushed integer;
BEGIN
    WITH push AS (
        INSERT INTO push_outbox (subscription_id, user_id, payload)
        SELECT s.id, n.user_id, jsonb_build_object('type', 'notification',
                                                   'notification', notification_json(n))
        FROM new_notifications n JOIN push_subscriptions s ON s.user_id = n.user_id
        RETURNING 1)
    SELECT count(*) INTO pushed FROM push;
    IF pushed > 0 THEN
        PERFORM pg_notify('townhall_push', '');
    END IF;
    RETURN NULL;
END
$fn$;

CREATE TRIGGER notifications_push AFTER INSERT ON notifications
    REFERENCING NEW TABLE AS new_notifications
    FOR EACH STATEMENT EXECUTE FUNCTION notifications_push();
