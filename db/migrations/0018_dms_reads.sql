-- Direct messages, blocking, read markers (API.md v1.1: "Direct messages and
-- blocking", "Read markers and unread counts").
--
-- A DM is a channel of kind 'dm' without a community: the same messages,
-- seq, history, MQTT topics and message_store() as a community channel.  Its
-- members are rows of dm_members (2..10 people).  A 1:1 DM carries its pair
-- (pair_lo < pair_hi) under a unique key, so opening it twice, even at the
-- same instant, finds the one row (INSERT ... ON CONFLICT DO NOTHING).
ALTER TABLE channels
    ADD COLUMN kind text NOT NULL DEFAULT 'community',
    ADD COLUMN pair_lo bigint REFERENCES users (id) ON DELETE CASCADE,
    ADD COLUMN pair_hi bigint REFERENCES users (id) ON DELETE CASCADE,
    -- the last stored message (or the creation): GET /api/dms orders by it
    ADD COLUMN active_at timestamptz NOT NULL DEFAULT now(),
    ALTER COLUMN community_id DROP NOT NULL,
    ADD CONSTRAINT channels_kind_check CHECK (kind IN ('community', 'dm')),
    ADD CONSTRAINT channels_kind_community_check
        CHECK ((kind = 'dm') = (community_id IS NULL)),
    ADD CONSTRAINT channels_pair_check
        CHECK ((pair_lo IS NULL AND pair_hi IS NULL)
               OR (kind = 'dm' AND pair_lo < pair_hi)),
    -- NULLs are distinct: group DMs and community channels never collide
    ADD CONSTRAINT channels_pair_key UNIQUE (pair_lo, pair_hi);

CREATE TABLE dm_members (
    channel_id bigint NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    user_id    bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    joined_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (channel_id, user_id)
);
CREATE INDEX dm_members_user_idx ON dm_members (user_id, channel_id);

-- blocker_id blocked blocked_id (API.md: nobody opens or writes a DM with
-- someone who blocked them).
CREATE TABLE blocks (
    blocker_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    blocked_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (blocker_id, blocked_id),
    CONSTRAINT blocks_self_check CHECK (blocker_id <> blocked_id)
);
CREATE INDEX blocks_blocked_idx ON blocks (blocked_id, blocker_id);

-- A user's read marker in a channel: the highest seq they have read.  It
-- only moves forward.  unread = channels.last_seq - read_seq, exactly the
-- stored messages after the marker not sent by the user, because a user's
-- own message always lies at or below their marker: message_store() moves
-- the sender's marker to the message in the transaction that numbers it
-- (under the channel's row lock, so it is the channel's newest), and no
-- path moves a marker back.  Edits keep a message's seq and a deleted
-- message keeps its row and seq (a tombstone in history), so neither
-- changes a count.  No row: read_seq 0.  The one inexactness is 0016's
-- known hole (a seq left unused when a client stores one id in two channels
-- at the same instant): it counts as one unread message until read past.
CREATE TABLE channel_reads (
    user_id    bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    channel_id bigint NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    read_seq   bigint NOT NULL DEFAULT 0 CHECK (read_seq >= 0),
    PRIMARY KEY (user_id, channel_id)
);

-- The DM rule, beside community_access() (0017): a member of a DM whom
-- another member of it blocked is "muted" there: may read, may not write.
-- The apps mirror it to Redis (th:dm:<channel>, lib/mirror.h) and
-- scripts/mirror-rebuild reads it from here.
CREATE VIEW dm_member_state AS
    SELECT m.channel_id, m.user_id,
           EXISTS (SELECT 1 FROM dm_members o
                   JOIN blocks b ON b.blocker_id = o.user_id AND b.blocked_id = m.user_id
                   WHERE o.channel_id = m.channel_id AND o.user_id <> m.user_id) AS muted
    FROM dm_members m;

-- The caller's standing in a channel, community or DM (lib/policy.c decides
-- from it, policy_read_channel()): for a community channel the columns of
-- community_access(); for a DM no community, role 'member' for a member
-- (null: not one, the DM is invisible), muted by dm_member_state, and the
-- members (at most 10, for the events of the DM).
CREATE FUNCTION channel_access(p_user bigint, p_channel bigint)
RETURNS TABLE (community_id bigint, kind text, is_public boolean, owner_id bigint, role text,
               banned boolean, muted boolean, members bigint[])
LANGUAGE sql STABLE AS $fn$
    SELECT ch.community_id, ch.kind, a.is_public, a.owner_id, a.role, a.banned, false,
           NULL::bigint[]
    FROM channels ch CROSS JOIN LATERAL community_access(p_user, ch.community_id) a
    WHERE ch.id = p_channel AND ch.kind = 'community'
    UNION ALL
    SELECT NULL, 'dm', false, NULL, CASE WHEN s.user_id IS NOT NULL THEN 'member' END,
           false, coalesce(s.muted, false),
           ARRAY(SELECT d.user_id FROM dm_members d WHERE d.channel_id = ch.id
                 ORDER BY d.user_id)
    FROM channels ch LEFT JOIN dm_member_state s ON s.channel_id = ch.id AND s.user_id = p_user
    WHERE ch.id = p_channel AND ch.kind = 'dm'
$fn$;

-- GET /api/me/unread (fcgi-apps/realtime/reads.c) in one query: the
-- caller's channels — those of the communities where community_access()
-- gives them a role and no ban, and their DMs — joined to their markers,
-- keeping those with last_seq > read_seq.  Counts come from seq alone:
-- nothing here reads messages.  A single-SELECT SQL function, STABLE: the
-- planner inlines it into the caller's query (so EXPLAIN shows the join).
-- EXPLAIN ANALYZE with 1,000 channels for one user: see
-- tests/integration/unread.test.mjs (it prints the figure).
CREATE FUNCTION unread_channels(p_user bigint)
RETURNS TABLE (channel_id bigint, community_id bigint, last_seq bigint, read_seq bigint)
LANGUAGE sql STABLE AS $fn$
    SELECT c.id, c.community_id, c.last_seq, coalesce(r.read_seq, 0)
    FROM (SELECT ch.id FROM memberships m
          CROSS JOIN LATERAL community_access(p_user, m.community_id) a
          JOIN channels ch ON ch.community_id = m.community_id
          WHERE m.user_id = p_user AND a.role IS NOT NULL AND NOT a.banned
          UNION ALL
          SELECT d.channel_id FROM dm_members d WHERE d.user_id = p_user) mine
    JOIN channels c ON c.id = mine.id
    LEFT JOIN channel_reads r ON r.user_id = p_user AND r.channel_id = c.id
    WHERE c.last_seq > coalesce(r.read_seq, 0)
$fn$;

-- message_store() as in 0016, and in the same statement: the senders'
-- markers move to their newest message, the channel's active_at moves, and
-- an "unread" event for user/<id>/inbox is queued (event_outbox, then one
-- pg_notify wakes the bridge) for every sender and, in a DM, for every other
-- member, with counts read under the channel locks this call holds.  Both
-- writers (REST, the bridge) store through it, so both publish the same
-- events; the bridge publishes them after the commit, within a second.
-- Community channels announce the senders' own markers, and the channel's
-- new last_seq once on events/community/<id> ("channel_activity"): a count
-- per member per message would be a fan-out of the community's size, and a
-- client that knows its marker (GET /api/me/unread, its "unread" events)
-- computes its exact count from last_seq.
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
        w.channel_id, 'read_seq', w.read_seq, 'unread', t.top - w.read_seq, 'mentions', 0)
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
