-- One path for a chat message's seq (and its id's owner): the REST route
-- (POST /api/channels/:id/messages, fcgi-apps/realtime/messages.c) and the
-- bridge (realtime-bridge/bridge/store.c, messages published over MQTT) both
-- store through message_store(), so the two writers number a channel's
-- messages by the same rules: under the channel's row lock, last_seq + 1, 2, …
-- in the order given, gap-free, an id owned by the first sender and channel
-- that stored it.
--
-- Arguments (arrays of one length, one element per message, in the order
-- received): ids, channel ids, sender ids, bodies, reply_to (null: none).
-- One row per message, ordered by sender then id:
--   id, sender_id  (text, as the bridge's receipts name them)
--   status  1 stored now; 0 stored before (or earlier in this call) as this
--           sender's in this channel: a re-send, idempotent; 2 refused: the
--           id belongs to a message of another sender or channel; 3 dropped:
--           the channel or the sender is gone
--   reply_cleared  reply_to named no message of this channel stored before
--           or earlier in this call: stored with reply_to null (a subscriber
--           has seen the message already, so it must be stored; history never
--           points into another channel)
--   seq     the message's seq when status is 1, else null
--
-- EXPLAIN ANALYZE (generic plan, 800 rows, 1M in messages): the probes of
-- existing ids and of reply_to are index scans of messages_pkey, the hash
-- joins are over the batch's own rows, and channels and users are index
-- lookups: nothing scans messages.  Against the query before ids had owners
-- (1000 new messages, 10% replies, 500k stored; two interleaved A/B runs of
-- 15 pairs on a loaded 2-core machine): median 50.3 and 53.0 ms against 43.5
-- and 50.6 (+5 to +16 %); 1000 re-sends 10.2 and 9.7 ms against 8.0 and 8.1.
--
-- Known limit: a message skipped by ON CONFLICT after it was numbered (its id
-- committed meanwhile by a writer into another channel, whose lock this call
-- does not take — only a client re-using one id in two channels at the same
-- instant) leaves its seq unused: a hole in the channel's numbers, never a
-- duplicate (messages_seq_key).
--
-- A SQL function, VOLATILE: each of its two statements takes its own
-- snapshot, so the insert reads last_seq after the channel locks are held
-- (two writers into one channel take turns, their seqs never collide).  It is
-- planned at each call as the statements were before (custom plans).
-- tests/load/bridge-sql-ab compares the insert between two revisions: it
-- reads the statement between the "insert" markers below.
CREATE FUNCTION message_store(uuid[], bigint[], bigint[], text[], uuid[])
RETURNS TABLE (id text, sender_id text, status int, reply_cleared boolean, seq bigint)
LANGUAGE sql VOLATILE AS $fn$
    -- lock the channels in id order
    SELECT c.id FROM channels c WHERE c.id = ANY($2::bigint[]) ORDER BY c.id FOR UPDATE;
    -- insert:begin
    WITH input AS (SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::bigint[],
      $4::text[], $5::uuid[]) WITH ORDINALITY AS t(id, channel_id, sender_id, body,
      reply_to, ord)),
    -- = ANY(array) probes the primary key per id; a NOT EXISTS against the
    -- input rows may be planned as an anti-join over the whole table, which
    -- grows with every batch
    existing AS MATERIALIZED (SELECT m.id, m.channel_id, m.sender_id FROM messages m
      WHERE m.id = ANY($1::uuid[])),
    fresh AS MATERIALIZED (SELECT DISTINCT ON (i.id) i.* FROM input i
      WHERE NOT EXISTS (SELECT 1 FROM existing e WHERE e.id = i.id) ORDER BY i.id, i.ord),
    -- joins, not correlated EXISTS: a subquery over fresh per row is a
    -- scan of the batch per message (2.5x the batch's time at 1000)
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
    upd AS (UPDATE channels c SET last_seq = x.top FROM (SELECT channel_id, max(seq)
      AS top FROM ins GROUP BY channel_id) x WHERE c.id = x.channel_id)
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
    ORDER BY i.sender_id, i.id
    -- insert:end
$fn$;
