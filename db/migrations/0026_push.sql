-- Web Push (API.md v1.1 "Mentions and notifications", the Web Push
-- paragraph; issue 21 point 4).
--
-- push_subscriptions: a browser's PushSubscription (endpoint, the p256dh
-- key and auth secret of RFC 8291), written by PUT /api/push/subscriptions
-- (fcgi-apps/realtime/push.c).  An endpoint is one browser: unique, and
-- taken over by whoever registers it last.  At most 10 a user (the app
-- replaces the oldest).
--
-- push_outbox: one row per (notification, subscription), written by
-- notify() in the transaction that creates the notification, so a push
-- exists exactly when its notification committed.  th-pusher
-- (fcgi-apps/push) claims due rows for a lease (FOR UPDATE SKIP LOCKED,
-- lib/outbox.c, as th-mailer does with mail_outbox), drops a row whose
-- user has a live connection (presence in Redis: the inbox event reaches
-- them), else encrypts and POSTs it to the endpoint; a 404/410 deletes the
-- subscription (and its rows by the cascade); a retryable failure moves
-- next_at by a jittered exponential backoff; after the last attempt the row
-- stays with failed_at set.  Woken by pg_notify('townhall_push') at commit.

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
    subscription_id bigint NOT NULL REFERENCES push_subscriptions (id) ON DELETE CASCADE,
    user_id         bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    payload         jsonb NOT NULL CHECK (octet_length(payload::text) <= 3072),
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

-- notify() of 0024, and a push row for each subscription of each user it
-- notified, in the same statement.
CREATE OR REPLACE FUNCTION notify(p_users bigint[], p_type text, p_actor bigint, p_community bigint,
                       p_post bigint, p_comment bigint, p_channel bigint, p_message uuid,
                       p_call bigint)
RETURNS integer LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    made integer;
    pushed integer;
    prune bigint[];
BEGIN
    WITH ins AS (
        INSERT INTO notifications (user_id, type, actor_id, community_id, post_id, comment_id,
                                   channel_id, message_id, call_id)
        SELECT DISTINCT u, p_type, p_actor, p_community, p_post, p_comment, p_channel,
               p_message, p_call
        FROM unnest(p_users) u
        WHERE u IS NOT NULL AND u IS DISTINCT FROM p_actor
          AND NOT EXISTS (SELECT 1 FROM blocks b WHERE b.blocker_id = u AND b.blocked_id = p_actor)
          AND (p_community IS NULL OR p_type NOT IN ('mention', 'reply', 'post')
               OR coalesce((SELECT m.notify_level FROM memberships m
                            WHERE m.community_id = p_community AND m.user_id = u),
                           'mentions') <> 'none')
        ON CONFLICT DO NOTHING
        RETURNING *),
    ev AS (
        INSERT INTO event_outbox (payload)
        SELECT jsonb_build_object('type', 'notification', 'user_id', i.user_id,
                                  'notification', notification_json(i))
        FROM ins i
        RETURNING 1),
    push AS (
        -- one push per subscription of each notified user; th-pusher drops
        -- it when the user has a live connection at send time
        INSERT INTO push_outbox (subscription_id, user_id, payload)
        SELECT s.id, i.user_id, jsonb_build_object('type', 'notification',
                                                   'notification', notification_json(i))
        FROM ins i JOIN push_subscriptions s ON s.user_id = i.user_id
        RETURNING 1)
    -- ev and push run to completion whether or not it is read (a data-modifying WITH)
    SELECT count(*), coalesce(array_agg(i.user_id) FILTER (WHERE i.id % 64 = 0), '{}'),
           (SELECT count(*) FROM push)
    INTO made, prune, pushed FROM ins i;
    IF cardinality(prune) > 0 THEN
        DELETE FROM notifications n
        USING unnest(prune) p(user_id)
        WHERE n.user_id = p.user_id
          AND n.id < (SELECT o.id FROM notifications o WHERE o.user_id = p.user_id
                      ORDER BY o.id DESC OFFSET 10000 LIMIT 1);
    END IF;
    IF made > 0 THEN
        PERFORM pg_notify('townhall_events', '{"type":"notification"}');
    END IF;
    IF pushed > 0 THEN
        PERFORM pg_notify('townhall_push', '');
    END IF;
    RETURN made;
END
$fn$;
