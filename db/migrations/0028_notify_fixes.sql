-- Notifications, second pass (a review of 0024 and 0025 found these; each
-- was reproduced on a seeded database):
--
-- 1. The references of notifications had no index: the ON DELETE CASCADE of
--    every deleted message, post, comment or channel, and the trigger's own
--    lookups, scanned the whole table (a 300-message bridge batch: 27.7 s
--    at 1M notifications; with the index: 278 ms).
-- 2. notification_counts (0025) took one row lock a recipient inside the
--    action's transaction, in per-call order: two stored batches that
--    mention the same people in other orders deadlocked, and a post to a
--    community's `all` members held up chat elsewhere.  Gone: the unread
--    count is counted when read, from notifications_unread_idx (at most
--    10,000 rows a user are kept, 0024).
-- 3. `reply` (and `post`, `call`, `dm`) skipped the read check that
--    mentions had: a banned user, or one who left, heard of replies in a
--    place they may no longer read.  notify() now checks every type tied to
--    a place.
-- 4. Edits could add 20 new names each time: an item now mentions at most
--    20 people over all its versions; an edit of a reply does not add a
--    mention for the person it answers.
-- 5. A message with neither a reply nor an '@' runs no trigger at all.
-- 6. A deleted message takes its notifications with it (its mentions no
--    longer count in unread badges).
-- 7. The `unread` events a mention queues go only to members of the place
--    (GET /api/me/unread lists member channels only), and the ones
--    message_store() queues count mentions (a DM's badge was reset to 0 by
--    the next message).

CREATE INDEX notifications_message_idx ON notifications (message_id) WHERE message_id IS NOT NULL;
CREATE INDEX notifications_post_idx ON notifications (post_id) WHERE post_id IS NOT NULL;
CREATE INDEX notifications_comment_idx ON notifications (comment_id) WHERE comment_id IS NOT NULL;
CREATE INDEX notifications_channel_idx ON notifications (channel_id) WHERE channel_id IS NOT NULL;
CREATE INDEX notifications_community_idx ON notifications (community_id) WHERE community_id IS NOT NULL;
CREATE INDEX notifications_call_idx ON notifications (call_id) WHERE call_id IS NOT NULL;
-- the members a new post tells (level `all`)
CREATE INDEX memberships_notify_all_idx ON memberships (community_id, user_id)
    WHERE notify_level = 'all';

DROP TRIGGER notifications_count_insert ON notifications;
DROP TRIGGER notifications_count_update ON notifications;
DROP TRIGGER notifications_count_delete ON notifications;
DROP FUNCTION notification_counts_add();
DROP FUNCTION notification_counts_change();
DROP FUNCTION notification_counts_remove();
DROP TABLE notification_counts;

CREATE OR REPLACE FUNCTION notify(p_users bigint[], p_type text, p_actor bigint, p_community bigint,
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
          -- what happened in a place is told only to who may read it now
          AND (p_type NOT IN ('mention', 'reply', 'post', 'call', 'dm')
               OR notify_may_read(u, p_community, p_channel))
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

-- At most 20 people an item mentions, over all its versions: those already
-- told count, and are not asked again.
CREATE OR REPLACE FUNCTION notify_mentions(p_text text, p_actor bigint, p_community bigint,
                                           p_post bigint, p_comment bigint, p_channel bigint,
                                           p_message uuid, p_except bigint[])
RETURNS integer LANGUAGE sql VOLATILE AS $fn$
    WITH told AS (SELECT n.user_id FROM notifications n
                  WHERE n.type = 'mention'
                    AND CASE WHEN p_message IS NOT NULL THEN n.message_id = p_message
                             WHEN p_comment IS NOT NULL THEN n.comment_id = p_comment
                             ELSE n.post_id = p_post AND n.comment_id IS NULL END)
    SELECT notify(ARRAY(SELECT u.id FROM unnest(mention_names(p_text)) WITH ORDINALITY AS m(name, ord)
                        JOIN users u ON u.username = m.name
                        WHERE NOT (u.id = ANY (coalesce(p_except, '{}')))
                          AND u.id NOT IN (SELECT user_id FROM told)
                          AND notify_may_read(u.id, p_community, p_channel)
                        ORDER BY m.ord
                        LIMIT greatest(0, 20 - (SELECT count(*) FROM told))),
                  'mention', p_actor, p_community, p_post, p_comment, p_channel, p_message,
                  NULL)
$fn$;

-- messages: the sender of the message replied to (on an edit too, so the
-- person answered gets no mention besides the reply); then mentions; then
-- the channel's counts for whoever this made a mention for, if a member.
CREATE OR REPLACE FUNCTION messages_notify() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
    cid bigint;
    told bigint[];
BEGIN
    IF NEW.deleted_at IS NOT NULL THEN
        RETURN NULL;
    END IF;
    SELECT ch.community_id INTO cid FROM channels ch WHERE ch.id = NEW.channel_id;
    IF NEW.reply_to IS NOT NULL THEN
        told := ARRAY(SELECT r.sender_id FROM messages r
                      WHERE r.id = NEW.reply_to AND r.deleted_at IS NULL);
        IF TG_OP = 'INSERT' THEN
            PERFORM notify(told, 'reply', NEW.sender_id, cid, NULL, NULL, NEW.channel_id, NEW.id,
                           NULL);
        END IF;
    END IF;
    IF strpos(NEW.body, '@') = 0 THEN
        RETURN NULL;
    END IF;
    PERFORM notify_mentions(NEW.body, NEW.sender_id, cid, NULL, NULL, NEW.channel_id, NEW.id,
                            told);
    INSERT INTO event_outbox (payload)
    SELECT jsonb_build_object('type', 'unread', 'user_id', n.user_id,
               'channel_id', NEW.channel_id, 'read_seq', coalesce(r.read_seq, 0),
               'unread', ch.last_seq - coalesce(r.read_seq, 0),
               'mentions', channel_mentions(n.user_id, NEW.channel_id, coalesce(r.read_seq, 0)))
    FROM notifications n
    JOIN channels ch ON ch.id = NEW.channel_id
    LEFT JOIN channel_reads r ON r.user_id = n.user_id AND r.channel_id = NEW.channel_id
    WHERE n.message_id = NEW.id AND n.type = 'mention' AND n.created_at = now()
      AND (CASE WHEN cid IS NULL
                THEN EXISTS (SELECT 1 FROM dm_members d
                             WHERE d.channel_id = NEW.channel_id AND d.user_id = n.user_id)
                ELSE EXISTS (SELECT 1 FROM memberships m
                             WHERE m.community_id = cid AND m.user_id = n.user_id) END);
    RETURN NULL;
END
$fn$;

DROP TRIGGER messages_notify_insert ON messages;
DROP TRIGGER messages_notify_edit ON messages;
CREATE TRIGGER messages_notify_insert AFTER INSERT ON messages
    FOR EACH ROW WHEN (NEW.reply_to IS NOT NULL OR strpos(NEW.body, '@') > 0)
    EXECUTE FUNCTION messages_notify();
CREATE TRIGGER messages_notify_edit AFTER UPDATE OF body ON messages
    FOR EACH ROW WHEN (OLD.body IS DISTINCT FROM NEW.body AND strpos(NEW.body, '@') > 0)
    EXECUTE FUNCTION messages_notify();
DROP TRIGGER posts_notify_edit ON posts;
CREATE TRIGGER posts_notify_edit AFTER UPDATE OF title, body ON posts
    FOR EACH ROW
    WHEN ((OLD.title IS DISTINCT FROM NEW.title OR OLD.body IS DISTINCT FROM NEW.body)
          AND strpos(NEW.title || NEW.body, '@') > 0)
    EXECUTE FUNCTION posts_notify();

-- a deleted message (its body blanked) takes its notifications with it
CREATE FUNCTION messages_unnotify() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    DELETE FROM notifications WHERE message_id = NEW.id;
    RETURN NULL;
END
$fn$;
CREATE TRIGGER messages_unnotify_delete AFTER UPDATE OF deleted_at ON messages
    FOR EACH ROW WHEN (OLD.deleted_at IS NULL AND NEW.deleted_at IS NOT NULL)
    EXECUTE FUNCTION messages_unnotify();

-- message_store() as in 0018, its `unread` events counting mentions
CREATE OR REPLACE FUNCTION message_store(uuid[], bigint[], bigint[], text[], uuid[])
RETURNS TABLE (id text, sender_id text, status int, reply_cleared boolean, seq bigint)
LANGUAGE sql VOLATILE AS $fn$
    -- lock the channels in id order
    SELECT c.id FROM channels c WHERE c.id = ANY($2::bigint[]) ORDER BY c.id FOR UPDATE;
    -- insert:begin
    WITH input AS (SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::bigint[],
      $4::text[], $5::uuid[]) WITH ORDINALITY AS t(id, channel_id, sender_id, body,
      reply_to, ord)),
    existing AS MATERIALIZED (SELECT m.id, m.channel_id, m.sender_id FROM messages m
      WHERE m.id = ANY($1::uuid[])),
    fresh AS MATERIALIZED (SELECT DISTINCT ON (i.id) i.* FROM input i
      WHERE NOT EXISTS (SELECT 1 FROM existing e WHERE e.id = i.id) ORDER BY i.id, i.ord),
    numbered AS (SELECT f.id, f.channel_id, f.sender_id, f.body, f.ord,
      CASE WHEN rm.id IS NOT NULL OR rg.id IS NOT NULL THEN f.reply_to END AS reply_to,
      f.reply_to IS NOT NULL AS had_reply,
      c.last_seq + row_number() OVER (PARTITION BY f.channel_id ORDER BY f.ord) AS seq
      FROM fresh f JOIN channels c ON c.id = f.channel_id
      JOIN users u ON u.id = f.sender_id
      LEFT JOIN messages rm ON rm.id = f.reply_to AND rm.channel_id = f.channel_id
      LEFT JOIN fresh rg ON rg.id = f.reply_to AND rg.channel_id = f.channel_id
        AND rg.ord < f.ord),
    ins AS (INSERT INTO messages (id, channel_id, sender_id, body, reply_to, seq)
      SELECT id, channel_id, sender_id, body, reply_to, seq FROM numbered
      ON CONFLICT (id) DO NOTHING RETURNING id, channel_id, seq, sender_id),
    tops AS MATERIALIZED (SELECT channel_id, max(seq) AS top FROM ins GROUP BY channel_id),
    upd AS (UPDATE channels c SET last_seq = x.top, active_at = now() FROM tops x
      WHERE c.id = x.channel_id),
    -- each sender's newest message in each channel: their new marker
    mine AS MATERIALIZED (SELECT channel_id, sender_id AS user_id, max(seq) AS read_seq
      FROM ins GROUP BY channel_id, sender_id),
    marks AS (INSERT INTO channel_reads (user_id, channel_id, read_seq)
      SELECT user_id, channel_id, read_seq FROM mine
      ON CONFLICT (user_id, channel_id)
      DO UPDATE SET read_seq = GREATEST(channel_reads.read_seq, EXCLUDED.read_seq)),
    -- who hears of it: the senders, and the other members of a DM
    told AS (SELECT m.user_id, m.channel_id, m.read_seq FROM mine m
      UNION ALL
      SELECT d.user_id, d.channel_id, coalesce(r.read_seq, 0)
      FROM tops t JOIN channels c ON c.id = t.channel_id AND c.kind = 'dm'
      JOIN dm_members d ON d.channel_id = t.channel_id
      LEFT JOIN channel_reads r ON r.user_id = d.user_id AND r.channel_id = d.channel_id
      WHERE NOT EXISTS (SELECT 1 FROM mine m WHERE m.channel_id = d.channel_id
                        AND m.user_id = d.user_id)),
    evs AS (INSERT INTO event_outbox (payload)
      SELECT jsonb_build_object('type', 'unread', 'user_id', w.user_id, 'channel_id',
        w.channel_id, 'read_seq', w.read_seq, 'unread', t.top - w.read_seq,
        'mentions', channel_mentions(w.user_id, w.channel_id, w.read_seq))
      FROM told w JOIN tops t ON t.channel_id = w.channel_id
      RETURNING 1),
    -- a community channel's new last seq, once per channel and batch, on
    -- events/community/<id>: each member's client knows its own marker, so
    -- it has its exact count without a per-member event
    acts AS (INSERT INTO event_outbox (payload)
      SELECT jsonb_build_object('type', 'channel_activity', 'community_id', c.community_id,
        'channel_id', t.channel_id, 'last_seq', t.top)
      FROM tops t JOIN channels c ON c.id = t.channel_id AND c.kind = 'community'
      RETURNING 1),
    nudge AS MATERIALIZED (SELECT pg_notify('townhall_events', '{"type":"unread"}')
      FROM (SELECT 1 FROM evs UNION ALL SELECT 1 FROM acts LIMIT 1) z)
    SELECT i.id::text, i.sender_id::text,
      CASE WHEN s.id IS NOT NULL AND n.ord = i.ord THEN 1
           WHEN coalesce(s.channel_id, e.channel_id) = i.channel_id
            AND coalesce(s.sender_id, e.sender_id) = i.sender_id THEN 0
           WHEN s.id IS NULL AND e.id IS NULL AND n.id IS NULL THEN 3
           ELSE 2 END,
      coalesce(s.id IS NOT NULL AND n.ord = i.ord AND n.had_reply AND n.reply_to IS NULL,
               false),
      CASE WHEN s.id IS NOT NULL AND n.ord = i.ord THEN s.seq END
    FROM input i LEFT JOIN ins s ON s.id = i.id LEFT JOIN existing e ON e.id = i.id
      LEFT JOIN numbered n ON n.id = i.id
      LEFT JOIN nudge ON true
    ORDER BY i.sender_id, i.id
    -- insert:end
$fn$;
