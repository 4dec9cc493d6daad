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
