-- GET /api/me/unread with 1,000 channels (docs/benchmarks.md "notify"):
-- unread_channels() of 0018 let the planner join channels first and run
-- community_access() once per channel (1,000 lateral calls for 11
-- memberships: 10 of the statement's 16 ms, EXPLAIN (ANALYZE) on the bench's
-- data).  The same rows, with the caller's readable communities settled
-- first (OFFSET 0 keeps that subquery from being flattened, so
-- community_access() runs once per membership), then their channels through
-- channels_name_key (community_id, name): 1.5 ms.
CREATE OR REPLACE FUNCTION unread_channels(p_user bigint)
RETURNS TABLE (channel_id bigint, community_id bigint, last_seq bigint, read_seq bigint)
LANGUAGE sql STABLE AS $fn$
    SELECT c.id, c.community_id, c.last_seq, coalesce(r.read_seq, 0)
    FROM (SELECT ch.id
          FROM (SELECT m.community_id FROM memberships m
                CROSS JOIN LATERAL community_access(p_user, m.community_id) a
                WHERE m.user_id = p_user AND a.role IS NOT NULL AND NOT a.banned
                OFFSET 0) mc
          JOIN channels ch ON ch.community_id = mc.community_id
          UNION ALL
          SELECT d.channel_id FROM dm_members d WHERE d.user_id = p_user) mine
    JOIN channels c ON c.id = mine.id
    LEFT JOIN channel_reads r ON r.user_id = p_user AND r.channel_id = c.id
    WHERE c.last_seq > coalesce(r.read_seq, 0)
$fn$;

-- A channel's unread mentions (GET /api/me/unread, PUT .../read, GET
-- /api/dms, the `unread` events) are the caller's unread mention
-- notifications after their marker.  The marker is a seq, the notification
-- names a message: each count joined messages to learn the seq, a heap visit
-- and a primary-key probe per mention (2 of the 5 ms of GET /api/me/unread
-- with 1,000 channels).  A message's seq never changes (an edit keeps it,
-- a deletion leaves a tombstone), so the notification keeps it from its
-- insert, filled by a BEFORE INSERT trigger whatever statement inserts it
-- (an AFTER trigger of messages sees the message it is called for), and the
-- count is an index-only scan of notifications_mentions_idx.
ALTER TABLE notifications ADD COLUMN message_seq bigint;
UPDATE notifications n SET message_seq = m.seq FROM messages m
    WHERE n.message_id IS NOT NULL AND m.id = n.message_id;

CREATE FUNCTION notifications_message_seq() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    SELECT m.seq INTO NEW.message_seq FROM messages m WHERE m.id = NEW.message_id;
    RETURN NEW;
END
$fn$;
CREATE TRIGGER notifications_message_seq BEFORE INSERT ON notifications
    FOR EACH ROW WHEN (NEW.message_id IS NOT NULL)
    EXECUTE FUNCTION notifications_message_seq();

DROP INDEX notifications_mentions_idx;
CREATE INDEX notifications_mentions_idx ON notifications (user_id, channel_id, message_seq)
    WHERE type = 'mention' AND read_at IS NULL;

CREATE OR REPLACE FUNCTION channel_mentions(p_user bigint, p_channel bigint, p_read_seq bigint)
RETURNS bigint LANGUAGE sql STABLE AS $fn$
    SELECT count(*) FROM notifications n
    WHERE n.user_id = p_user AND n.type = 'mention' AND n.read_at IS NULL
      AND n.channel_id = p_channel AND n.message_seq > p_read_seq
$fn$;
