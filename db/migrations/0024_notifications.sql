-- Mentions and notifications (API.md v1.1 "Mentions and notifications").
--
-- Triggers create them, not the handlers: a post, comment or message
-- stored by any path (the REST routes, the bridge's message_store() for
-- MQTT chat) notifies in the same transaction, once, and none can forget.
-- Each notification is queued for user/<id>/inbox in event_outbox in that
-- transaction too ({"type": "notification", "user_id", "notification"}),
-- and the bridge publishes it after the commit (realtime-bridge/bridge/relay.c).
--
-- Rules:
--   * nobody is notified of their own action, nor by someone they blocked;
--   * a mention is `@username` on a word boundary, case-insensitive, in a
--     post's title or body, a comment or a message; the first 20 distinct
--     names of an item count; only users who may read where it was written
--     are notified (community_access() for a community, membership for a
--     DM); a user the item also answers (reply) gets the reply only;
--   * reply: a comment on your post, a reply to your comment, a message
--     that replies to yours;
--   * post: a new post, to the members whose level is 'all';
--   * ban: you were banned (the actor is the moderator);
--   * role: your role changed (actor: the setting townhall.actor_id when
--     the app sets it, else null);
--   * call: an invitation (a call started in a channel you are in);
--   * dm: a new DM conversation (fcgi-apps/realtime/dms.c calls notify()
--     in the transaction that opens it: the opener is known only there);
--   * a community's level (memberships.notify_level, default 'mentions'):
--     'none' silences mention, reply and post from it; 'all' adds post.
--   * once: (user, type, item) is unique for mention, reply and post, so
--     an edit never notifies the same user twice for the same item.
-- Kept per user: the newest 10,000.  Counting on every insert would cost a
-- walk of the user's index each time; instead, when a new notification's
-- id is a multiple of 64, its user's rows past the newest 10,000 go
-- (amortized: one bounded walk per 64 notifications).

ALTER TABLE memberships
    ADD COLUMN notify_level text NOT NULL DEFAULT 'mentions',
    ADD CONSTRAINT memberships_notify_level_check
        CHECK (notify_level IN ('all', 'mentions', 'none'));

CREATE TABLE notifications (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id      bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    type         text NOT NULL,
    actor_id     bigint REFERENCES users (id) ON DELETE SET NULL,
    community_id bigint REFERENCES communities (id) ON DELETE CASCADE,
    post_id      bigint REFERENCES posts (id) ON DELETE CASCADE,
    comment_id   bigint REFERENCES comments (id) ON DELETE CASCADE,
    channel_id   bigint REFERENCES channels (id) ON DELETE CASCADE,
    message_id   uuid REFERENCES messages (id) ON DELETE CASCADE,
    call_id      bigint REFERENCES calls (id) ON DELETE CASCADE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    read_at      timestamptz,
    CONSTRAINT notifications_type_check CHECK (type IN
        ('mention', 'reply', 'dm', 'call', 'role', 'ban', 'post', 'report_resolved'))
);
-- the caller's list newest first, ?after= oldest first, ?unread=true
CREATE INDEX notifications_user_idx ON notifications (user_id, id);
CREATE INDEX notifications_unread_idx ON notifications (user_id, id) WHERE read_at IS NULL;
-- GET /api/me/unread: a channel's unread mentions
CREATE INDEX notifications_mentions_idx ON notifications (user_id, channel_id)
    WHERE type = 'mention' AND read_at IS NULL;
-- once per user, type and item
CREATE UNIQUE INDEX notifications_once ON notifications (user_id, type, coalesce(post_id, 0),
    coalesce(comment_id, 0), coalesce(message_id, '00000000-0000-0000-0000-000000000000'))
    WHERE type IN ('mention', 'reply', 'post');
-- what a deleted user's actions left behind (actor_id SET NULL) stays
CREATE INDEX notifications_actor_idx ON notifications (actor_id);

-- The one JSON shape of a notification: the inbox event and the REST
-- list both use it (fcgi-apps/realtime/notifications.c), so they agree.
CREATE FUNCTION notification_json(n notifications) RETURNS jsonb
LANGUAGE sql STABLE AS $fn$
    SELECT jsonb_build_object(
        'id', n.id, 'type', n.type,
        'actor', (SELECT jsonb_build_object('id', u.id, 'username', u.username,
                    'display_name', u.display_name, 'created_at',
                    to_char(u.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))
                  FROM users u WHERE u.id = n.actor_id),
        'community_id', n.community_id, 'post_id', n.post_id, 'comment_id', n.comment_id,
        'channel_id', n.channel_id, 'message_id', n.message_id, 'call_id', n.call_id,
        'created_at', to_char(n.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
        'read_at', to_char(n.read_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))
$fn$;

-- The users named in text: the first 20 distinct `@username`s (lower case).
CREATE FUNCTION mention_names(p_text text) RETURNS text[]
LANGUAGE sql IMMUTABLE AS $fn$
    SELECT coalesce(array_agg(name ORDER BY first), '{}')
    FROM (SELECT name, min(ord) AS first
          FROM (SELECT lower(m[1]) AS name, row_number() OVER () AS ord
                FROM regexp_matches(coalesce(p_text, ''),
                     '(?<![A-Za-z0-9_])@([A-Za-z0-9_]{3,32})(?![A-Za-z0-9_])', 'g') m) x
          GROUP BY name ORDER BY min(ord) LIMIT 20) y
$fn$;

-- May p_user read what is written in community p_community (a community
-- item) or DM channel p_channel (p_community null)?  The read rule of
-- lib/policy.c on community_access(), and DM membership.
CREATE FUNCTION notify_may_read(p_user bigint, p_community bigint, p_channel bigint)
RETURNS boolean LANGUAGE sql STABLE AS $fn$
    SELECT CASE WHEN p_community IS NOT NULL THEN
                coalesce((SELECT a.is_public OR (a.role IS NOT NULL AND NOT a.banned)
                          FROM community_access(p_user, p_community) a), false)
           ELSE EXISTS (SELECT 1 FROM dm_members d
                        WHERE d.channel_id = p_channel AND d.user_id = p_user) END
$fn$;

-- Creates the notifications of one action for p_users and queues their
-- inbox events; skips the actor, users who blocked the actor, and (for
-- mention, reply, post) users whose level in the community is 'none';
-- once per (user, type, item).  Returns how many were created.
CREATE FUNCTION notify(p_users bigint[], p_type text, p_actor bigint, p_community bigint,
                       p_post bigint, p_comment bigint, p_channel bigint, p_message uuid,
                       p_call bigint)
RETURNS integer LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    made integer;
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
        RETURNING 1)
    -- ev runs to completion whether or not it is read (a data-modifying WITH)
    SELECT count(*), coalesce(array_agg(i.user_id) FILTER (WHERE i.id % 64 = 0), '{}')
    INTO made, prune FROM ins i;
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
    RETURN made;
END
$fn$;

-- Mentions in text written by p_actor: notify those named who may read
-- it, except the users in p_except (they get a reply for the same item).
CREATE FUNCTION notify_mentions(p_text text, p_actor bigint, p_community bigint,
                                p_post bigint, p_comment bigint, p_channel bigint,
                                p_message uuid, p_except bigint[])
RETURNS integer LANGUAGE sql VOLATILE AS $fn$
    SELECT notify(ARRAY(SELECT u.id FROM users u
                        WHERE u.username = ANY (mention_names(p_text))
                          AND NOT (u.id = ANY (coalesce(p_except, '{}')))
                          AND notify_may_read(u.id, p_community, p_channel)),
                  'mention', p_actor, p_community, p_post, p_comment, p_channel, p_message,
                  NULL)
$fn$;

-- The caller's unread mentions in a channel after their marker: the
-- `mentions` of every unread count (GET /api/me/unread, PUT .../read, GET
-- /api/dms, the `unread` events), from notifications_mentions_idx.
CREATE FUNCTION channel_mentions(p_user bigint, p_channel bigint, p_read_seq bigint)
RETURNS bigint LANGUAGE sql STABLE AS $fn$
    SELECT count(*) FROM notifications n JOIN messages m ON m.id = n.message_id
    WHERE n.user_id = p_user AND n.type = 'mention' AND n.read_at IS NULL
      AND n.channel_id = p_channel AND m.seq > p_read_seq
$fn$;

-- posts: a new post mentions, and tells the members whose level is 'all';
-- an edit mentions (a name already notified for this post is not again).
CREATE FUNCTION posts_notify() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM notify(ARRAY(SELECT m.user_id FROM memberships m
                             WHERE m.community_id = NEW.community_id AND m.notify_level = 'all'),
                       'post', NEW.author_id, NEW.community_id, NEW.id, NULL, NULL, NULL, NULL);
    END IF;
    PERFORM notify_mentions(NEW.title || E'\n' || NEW.body, NEW.author_id, NEW.community_id,
                            NEW.id, NULL, NULL, NULL, NULL);
    RETURN NULL;
END
$fn$;
CREATE TRIGGER posts_notify_insert AFTER INSERT ON posts
    FOR EACH ROW EXECUTE FUNCTION posts_notify();
CREATE TRIGGER posts_notify_edit AFTER UPDATE OF title, body ON posts
    FOR EACH ROW
    WHEN (OLD.title IS DISTINCT FROM NEW.title OR OLD.body IS DISTINCT FROM NEW.body)
    EXECUTE FUNCTION posts_notify();

-- comments: the post's author and the parent comment's author are replied
-- to; then mentions.
CREATE FUNCTION comments_notify() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
    cid bigint;
    told bigint[];
BEGIN
    SELECT p.community_id, ARRAY[p.author_id, c.author_id] INTO cid, told
    FROM posts p LEFT JOIN comments c ON c.id = NEW.parent_id
    WHERE p.id = NEW.post_id;
    PERFORM notify(told, 'reply', NEW.author_id, cid, NEW.post_id, NEW.id, NULL, NULL, NULL);
    PERFORM notify_mentions(NEW.body, NEW.author_id, cid, NEW.post_id, NEW.id, NULL, NULL, told);
    RETURN NULL;
END
$fn$;
CREATE TRIGGER comments_notify_insert AFTER INSERT ON comments
    FOR EACH ROW EXECUTE FUNCTION comments_notify();

-- messages: the sender of the message replied to; then mentions.  A
-- deleted message (body '') notifies nobody.
CREATE FUNCTION messages_notify() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
    cid bigint;
    told bigint[];
BEGIN
    IF NEW.deleted_at IS NOT NULL THEN
        RETURN NULL;
    END IF;
    SELECT ch.community_id INTO cid FROM channels ch WHERE ch.id = NEW.channel_id;
    IF TG_OP = 'INSERT' AND NEW.reply_to IS NOT NULL THEN
        told := ARRAY(SELECT r.sender_id FROM messages r
                      WHERE r.id = NEW.reply_to AND r.deleted_at IS NULL);
        PERFORM notify(told, 'reply', NEW.sender_id, cid, NULL, NULL, NEW.channel_id, NEW.id,
                       NULL);
    END IF;
    PERFORM notify_mentions(NEW.body, NEW.sender_id, cid, NULL, NULL, NEW.channel_id, NEW.id,
                            told);
    -- whoever this message mentions now (created in this transaction) gets
    -- their channel's counts with the mention in them: the unread events
    -- message_store() queued were counted before these rows existed
    INSERT INTO event_outbox (payload)
    SELECT jsonb_build_object('type', 'unread', 'user_id', n.user_id,
               'channel_id', NEW.channel_id, 'read_seq', coalesce(r.read_seq, 0),
               'unread', ch.last_seq - coalesce(r.read_seq, 0),
               'mentions', channel_mentions(n.user_id, NEW.channel_id, coalesce(r.read_seq, 0)))
    FROM notifications n
    JOIN channels ch ON ch.id = NEW.channel_id
    LEFT JOIN channel_reads r ON r.user_id = n.user_id AND r.channel_id = NEW.channel_id
    WHERE n.message_id = NEW.id AND n.type = 'mention' AND n.created_at = now();
    RETURN NULL;
END
$fn$;
CREATE TRIGGER messages_notify_insert AFTER INSERT ON messages
    FOR EACH ROW EXECUTE FUNCTION messages_notify();
CREATE TRIGGER messages_notify_edit AFTER UPDATE OF body ON messages
    FOR EACH ROW WHEN (OLD.body IS DISTINCT FROM NEW.body)
    EXECUTE FUNCTION messages_notify();

-- bans: the banned user learns it (the actor is who banned).
CREATE FUNCTION bans_notify() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM notify(ARRAY[NEW.user_id], 'ban', NEW.banned_by, NEW.community_id, NULL, NULL,
                   NULL, NULL, NULL);
    RETURN NULL;
END
$fn$;
CREATE TRIGGER bans_notify_insert AFTER INSERT ON bans
    FOR EACH ROW EXECUTE FUNCTION bans_notify();

-- memberships: a role that changed (not a join, not a level change).
CREATE FUNCTION memberships_notify() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM notify(ARRAY[NEW.user_id], 'role',
                   nullif(current_setting('townhall.actor_id', true), '')::bigint,
                   NEW.community_id, NULL, NULL, NULL, NULL, NULL);
    RETURN NULL;
END
$fn$;
CREATE TRIGGER memberships_notify_role AFTER UPDATE OF role ON memberships
    FOR EACH ROW WHEN (OLD.role IS DISTINCT FROM NEW.role)
    EXECUTE FUNCTION memberships_notify();

-- calls: an invitation to the members of the call's channel (a DM's
-- members; a community's members, at most 1000, as the call_invite event of
-- fcgi-apps/realtime/calls.c) but the caller.
CREATE FUNCTION calls_notify() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
    cid bigint;
BEGIN
    SELECT ch.community_id INTO cid FROM channels ch WHERE ch.id = NEW.channel_id;
    PERFORM notify(CASE WHEN cid IS NULL THEN
                       ARRAY(SELECT d.user_id FROM dm_members d WHERE d.channel_id = NEW.channel_id)
                   ELSE
                       ARRAY(SELECT m.user_id FROM memberships m
                             WHERE m.community_id = cid AND m.user_id <> NEW.created_by
                             ORDER BY m.user_id LIMIT 1000) END,
                   'call', NEW.created_by, cid, NULL, NULL, NEW.channel_id, NULL, NEW.id);
    RETURN NULL;
END
$fn$;
CREATE TRIGGER calls_notify_insert AFTER INSERT ON calls
    FOR EACH ROW EXECUTE FUNCTION calls_notify();
