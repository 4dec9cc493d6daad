-- The cached answers of GET /api/me/unread and GET /api/notifications
-- (fcgi-apps/realtime/unreadcache.c) stay exact through version keys in
-- Redis (lib/unreadver.h): a user's, and a community's for its channels.
-- Whatever statement changes what those answers are made of — a
-- notification made, read or removed (by a trigger of 0024, a route, a
-- cascade), a marker, a membership, a DM's members, a channel made, removed
-- or given a new last_seq — names here the versions it makes old, in the
-- transaction-local setting townhall.uv ("u12,c3,..."), so the request that
-- commits it bumps exactly those before its reply (fcgi-apps/lib/reply.c,
-- db_commit_or_reply) and another user's next read already has it.
-- Statement-level triggers with transition tables: one call per statement,
-- however many rows (a post notifying 10,000 members appends once).  Work
-- done outside a request (the bridge, scripts) is covered by the outbox
-- events the same changes queue, which the bridge's relay turns into bumps.

CREATE FUNCTION unread_touch_add(p_keys text) RETURNS void
LANGUAGE sql AS $fn$
    SELECT set_config('townhall.uv',
                      concat_ws(',', nullif(current_setting('townhall.uv', true), ''), p_keys),
                      true)
    WHERE p_keys IS NOT NULL AND p_keys <> ''
$fn$;

-- rows with a user_id: notifications, channel_reads, memberships, dm_members
CREATE FUNCTION unread_touch_users() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM unread_touch_add((SELECT string_agg(DISTINCT 'u' || t.user_id, ',') FROM touched t));
    RETURN NULL;
END
$fn$;

-- channels: a community channel makes its community's version old, a DM
-- (no community) its members' versions
CREATE FUNCTION unread_touch_channels() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM unread_touch_add((
        SELECT string_agg(DISTINCT k, ',') FROM (
            SELECT 'c' || t.community_id AS k FROM touched t WHERE t.community_id IS NOT NULL
            UNION ALL
            SELECT 'u' || d.user_id FROM touched t JOIN dm_members d ON d.channel_id = t.id
            WHERE t.community_id IS NULL) ks));
    RETURN NULL;
END
$fn$;

-- PostgreSQL allows a transition table only on a trigger of one event
CREATE TRIGGER notifications_uv_ins AFTER INSERT ON notifications
    REFERENCING NEW TABLE AS touched FOR EACH STATEMENT EXECUTE FUNCTION unread_touch_users();
CREATE TRIGGER notifications_uv_upd AFTER UPDATE ON notifications
    REFERENCING NEW TABLE AS touched FOR EACH STATEMENT EXECUTE FUNCTION unread_touch_users();
CREATE TRIGGER notifications_uv_del AFTER DELETE ON notifications
    REFERENCING OLD TABLE AS touched FOR EACH STATEMENT EXECUTE FUNCTION unread_touch_users();

CREATE TRIGGER channel_reads_uv_ins AFTER INSERT ON channel_reads
    REFERENCING NEW TABLE AS touched FOR EACH STATEMENT EXECUTE FUNCTION unread_touch_users();
CREATE TRIGGER channel_reads_uv_upd AFTER UPDATE ON channel_reads
    REFERENCING NEW TABLE AS touched FOR EACH STATEMENT EXECUTE FUNCTION unread_touch_users();

CREATE TRIGGER memberships_uv_ins AFTER INSERT ON memberships
    REFERENCING NEW TABLE AS touched FOR EACH STATEMENT EXECUTE FUNCTION unread_touch_users();
CREATE TRIGGER memberships_uv_del AFTER DELETE ON memberships
    REFERENCING OLD TABLE AS touched FOR EACH STATEMENT EXECUTE FUNCTION unread_touch_users();

CREATE TRIGGER dm_members_uv_ins AFTER INSERT ON dm_members
    REFERENCING NEW TABLE AS touched FOR EACH STATEMENT EXECUTE FUNCTION unread_touch_users();
CREATE TRIGGER dm_members_uv_del AFTER DELETE ON dm_members
    REFERENCING OLD TABLE AS touched FOR EACH STATEMENT EXECUTE FUNCTION unread_touch_users();

CREATE TRIGGER channels_uv_ins AFTER INSERT ON channels
    REFERENCING NEW TABLE AS touched FOR EACH STATEMENT EXECUTE FUNCTION unread_touch_channels();
CREATE TRIGGER channels_uv_upd AFTER UPDATE ON channels
    REFERENCING NEW TABLE AS touched FOR EACH STATEMENT EXECUTE FUNCTION unread_touch_channels();
CREATE TRIGGER channels_uv_del AFTER DELETE ON channels
    REFERENCING OLD TABLE AS touched FOR EACH STATEMENT EXECUTE FUNCTION unread_touch_channels();
