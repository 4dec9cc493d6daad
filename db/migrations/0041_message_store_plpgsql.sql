-- message_store() was a LANGUAGE sql function: PostgreSQL 15 plans every
-- statement of such a function again at each call (fmgr_sql), and the batch
-- statement with its twelve CTEs is costly to plan. A system profile of the
-- realtime-100k bench (one user's fan-out at 1,000 msg/s, each message
-- stored, batches of ~20) put 8 of PostgreSQL's 22 % of both cores in the
-- planner (pg_plan_query under fmgr_sql) and more in the parser. As plpgsql
-- the statements are prepared once a session and their plans kept
-- (RETURN QUERY; after five calls the generic plan, whose estimates are the
-- ones the SQL function had anyway: unnest() of a parameter is taken for ten
-- rows). The body is 0039's, unchanged; #variable_conflict use_column
-- because the result columns (id, sender_id, seq) are also names of columns.
CREATE OR REPLACE FUNCTION message_store(uuid[], bigint[], bigint[], text[], uuid[])
RETURNS TABLE (id text, sender_id text, status int, reply_cleared boolean, seq bigint)
LANGUAGE plpgsql VOLATILE AS $fn$
#variable_conflict use_column
BEGIN
    -- lock the channels in id order
    PERFORM c.id FROM channels c WHERE c.id = ANY($2::bigint[]) ORDER BY c.id FOR UPDATE;
    RETURN QUERY
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
      LEFT JOIN LATERAL (SELECT r.id FROM fresh r WHERE f.reply_to IS NOT NULL
        AND r.id = f.reply_to AND r.channel_id = f.channel_id AND r.ord < f.ord
        LIMIT 1) rg ON true),
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
    ;
END
$fn$;
