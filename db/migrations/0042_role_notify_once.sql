-- A role notification per user and community while it is unread: an admin
-- who flips somebody's role back and forth (PUT .../members/:id, 0024's
-- memberships_notify) made a notification, an inbox event and a Web Push
-- per change.  notify() inserts with ON CONFLICT DO NOTHING, so this index
-- keeps the first unread one and drops the rest (the role itself is in the
-- community's member list); once read, the next change notifies again.
-- Older duplicates from before this index are marked read first, so that it
-- can be made.
UPDATE notifications n SET read_at = n.created_at
WHERE n.type = 'role' AND n.read_at IS NULL
  AND EXISTS (SELECT 1 FROM notifications o
              WHERE o.type = 'role' AND o.read_at IS NULL AND o.user_id = n.user_id
                AND o.community_id = n.community_id AND o.id > n.id);
CREATE UNIQUE INDEX notifications_role_unread ON notifications (user_id, community_id)
    WHERE type = 'role' AND read_at IS NULL;
