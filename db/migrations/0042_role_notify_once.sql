-- A role notification per user and community while it is unread: an admin
-- who flipped somebody's role back and forth (PUT .../members/:id, 0024's
-- memberships_notify) made a notification, an inbox event and a Web Push
-- per change.  Now a change while one is unread brings that one up to date
-- (who changed it, when; no new event or push: the role itself is in the
-- community's member list), and once it is read the next change notifies
-- again.  The partial unique index holds it (notify() inserts with ON
-- CONFLICT DO NOTHING).  Older duplicates are marked read first so that it
-- can be made, under a lock so that none is added meanwhile.
LOCK TABLE notifications IN SHARE ROW EXCLUSIVE MODE;
UPDATE notifications n SET read_at = n.created_at
WHERE n.type = 'role' AND n.read_at IS NULL
  AND EXISTS (SELECT 1 FROM notifications o
              WHERE o.type = 'role' AND o.read_at IS NULL AND o.user_id = n.user_id
                AND o.community_id = n.community_id AND o.id > n.id);
CREATE UNIQUE INDEX notifications_role_unread ON notifications (user_id, community_id)
    WHERE type = 'role' AND read_at IS NULL;

CREATE OR REPLACE FUNCTION memberships_notify() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
    actor bigint := nullif(current_setting('townhall.actor_id', true), '')::bigint;
BEGIN
    -- notify() leaves out one's own change and a change by somebody blocked;
    -- the update follows the same rules
    UPDATE notifications n SET actor_id = actor, created_at = now()
    WHERE n.user_id = NEW.user_id AND n.community_id = NEW.community_id AND n.type = 'role'
      AND n.read_at IS NULL AND NEW.user_id IS DISTINCT FROM actor
      AND NOT EXISTS (SELECT 1 FROM blocks b WHERE b.blocker_id = NEW.user_id
                      AND b.blocked_id = actor);
    IF NOT FOUND THEN
        PERFORM notify(ARRAY[NEW.user_id], 'role', actor, NEW.community_id, NULL, NULL, NULL,
                       NULL, NULL);
    END IF;
    RETURN NULL;
END
$fn$;
