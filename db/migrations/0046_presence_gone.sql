-- A membership that ends ends the member's presence in that community.
--
-- The brokers publish a user's status retained to presence/<community>/<user>
-- for each community of the user at that moment (realtime-bridge/plugin/
-- conns.c), and every broker of the tier keeps it (the edges' bridges carry
-- presence both ways with Retain As Published).  A leave, a removal, a ban, an
-- erased account or a deleted community took the user out of the mirror's set
-- but nothing cleared that message: every later subscriber to
-- presence/<community>/+ got the ex-member's "online" (or "offline") for ever,
-- an erased account's id included.
--
-- Now every statement that deletes memberships, whichever path (members.c's
-- leave, removal and ban, account_erase()'s DELETE FROM users, a community's
-- deletion: both cascade), queues in its own transaction one outbox event
-- per 1000 memberships it ended:
--
--   {"type":"presence_gone","gone":[[<community_id>,<user_id>], ...]}
--
-- th-bridge's relay (realtime-bridge/bridge/relay.c) reads who of them is a
-- member again (a leave and a rejoin before the relay ran) and publishes, for
-- each of the others, a zero-length retained message to
-- presence/<community>/<user> at the hub, which deletes the retained message
-- there and on every edge (the bridges pass it on retained) and tells a live
-- subscriber the status is gone.  The event is deleted only after the hub's
-- PUBACKs (at least once), so a hub or a bridge that is down keeps it queued;
-- Redis plays no part.  The event never reaches a client.
--
-- presence_gone_queue() is also what th-bridge calls for a status of a
-- non-member it sees published (ghosts.c: an edge that missed a clear while
-- away from the hub sends its retained messages to the hub again when its
-- bridge reconnects): presence_ghosts() queues the clear of those that are no
-- membership now.

-- Queues presence_gone events for the pairs (p_communities[i], p_users[i]),
-- 1000 pairs an event, and wakes the bridge; how many events.
CREATE FUNCTION presence_gone_queue(p_communities bigint[], p_users bigint[])
RETURNS integer
LANGUAGE plpgsql AS $fn$
DECLARE
    made integer;
BEGIN
    WITH p AS (SELECT DISTINCT x.c, x.u FROM unnest(p_communities, p_users) AS x(c, u)
               WHERE x.c > 0 AND x.u > 0),
    n AS (SELECT p.c, p.u, (row_number() OVER (ORDER BY p.c, p.u) - 1) / 1000 AS chunk
          FROM p),
    ev AS (INSERT INTO event_outbox (payload)
           SELECT jsonb_build_object('type', 'presence_gone',
                                     'gone', jsonb_agg(jsonb_build_array(n.c, n.u)
                                                       ORDER BY n.c, n.u))
           FROM n GROUP BY n.chunk
           RETURNING 1)
    SELECT count(*) INTO made FROM ev;
    IF made > 0 THEN
        PERFORM pg_notify('townhall_events', '{"type":"presence_gone"}');
    END IF;
    RETURN made;
END
$fn$;

-- The pairs of which no membership exists now: their clears queued; how many
-- events.
CREATE FUNCTION presence_ghosts(p_communities bigint[], p_users bigint[])
RETURNS integer
LANGUAGE sql AS $fn$
    SELECT presence_gone_queue(array_agg(x.c ORDER BY x.c, x.u),
                               array_agg(x.u ORDER BY x.c, x.u))
    FROM unnest(p_communities, p_users) AS x(c, u)
    WHERE NOT EXISTS (SELECT 1 FROM memberships m
                      WHERE m.community_id = x.c AND m.user_id = x.u)
$fn$;

-- One call per statement, however many rows: an erased account's
-- communities, or a deleted community's members, go in events of 1000.
CREATE FUNCTION memberships_presence_gone() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM presence_gone_queue(array_agg(g.community_id ORDER BY g.community_id, g.user_id),
                                array_agg(g.user_id ORDER BY g.community_id, g.user_id))
    FROM gone g;
    RETURN NULL;
END
$fn$;

CREATE TRIGGER memberships_presence_gone AFTER DELETE ON memberships
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT
    EXECUTE FUNCTION memberships_presence_gone();
