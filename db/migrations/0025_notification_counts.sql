-- A user's unread notifications as a number kept beside them, so that
-- GET /api/me/unread reads one row instead of counting up to 10,000 (it cost
-- ~3 ms a request at 10,000: docs/benchmarks.md, notify).  Statement-level
-- triggers with transition tables keep it: one statement that notifies
-- 10,000 members (a post where their level is `all`) adds to 10,000 counts
-- in one INSERT .. ON CONFLICT, in user order (two such statements lock the
-- counts in the same order).  Every path that inserts, marks read or deletes
-- notifications (notify(), POST /api/notifications/read, the prune, a
-- cascade from a deleted post) goes through the table, so none can skip it.
CREATE TABLE notification_counts (
    user_id bigint PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    unread  integer NOT NULL DEFAULT 0 CHECK (unread >= 0)
);
INSERT INTO notification_counts (user_id, unread)
    SELECT user_id, count(*) FROM notifications WHERE read_at IS NULL GROUP BY user_id;

CREATE FUNCTION notification_counts_add() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    INSERT INTO notification_counts AS c (user_id, unread)
    SELECT user_id, count(*) FROM nw WHERE read_at IS NULL GROUP BY user_id ORDER BY user_id
    ON CONFLICT (user_id) DO UPDATE SET unread = c.unread + EXCLUDED.unread;
    RETURN NULL;
END
$fn$;
CREATE TRIGGER notifications_count_insert AFTER INSERT ON notifications
    REFERENCING NEW TABLE AS nw FOR EACH STATEMENT EXECUTE FUNCTION notification_counts_add();

CREATE FUNCTION notification_counts_change() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    UPDATE notification_counts c SET unread = c.unread + d.delta
    FROM (SELECT nw.user_id, sum((nw.read_at IS NULL)::int - (od.read_at IS NULL)::int) AS delta
          FROM nw JOIN od ON od.id = nw.id GROUP BY nw.user_id) d
    WHERE c.user_id = d.user_id AND d.delta <> 0;
    RETURN NULL;
END
$fn$;
CREATE TRIGGER notifications_count_update AFTER UPDATE ON notifications
    REFERENCING OLD TABLE AS od NEW TABLE AS nw FOR EACH STATEMENT
    EXECUTE FUNCTION notification_counts_change();

CREATE FUNCTION notification_counts_remove() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    UPDATE notification_counts c SET unread = c.unread - d.n
    FROM (SELECT user_id, count(*) AS n FROM od WHERE read_at IS NULL GROUP BY user_id) d
    WHERE c.user_id = d.user_id;
    RETURN NULL;
END
$fn$;
CREATE TRIGGER notifications_count_delete AFTER DELETE ON notifications
    REFERENCING OLD TABLE AS od FOR EACH STATEMENT EXECUTE FUNCTION notification_counts_remove();
