-- Deleting an account (API.md v1.1 "Account lifecycle": DELETE /api/auth/me).
--
-- What the account wrote stays for the others who answered it, as rows with
-- a NULL author and an empty body (posts: an empty title too; a reader sees
-- "a post by nobody, with nothing in it", never a placeholder text that
-- could be mistaken for content).  So posts, comments and messages no longer
-- go with their author's row: author_id / sender_id become NULL.
--
-- account_erase(user) does the whole database side in the caller's
-- transaction (the user row is locked first, so two erasures of one account
-- queue; the second finds no row and does nothing: idempotent):
--   - sessions: kept as revoked rows without user, address or device (the
--     revocation's truth in PostgreSQL must outlive every access token the
--     session signed: lib/revoke rebuilds Redis from these rows); their
--     refresh tokens deleted; their ids returned ('session', id) for the
--     caller to publish, with what the caller mirrors to Redis and the
--     communities whose feed caches it bumps (the rows' `what`);
--   - posts, comments, messages: author NULL, body (and title) empty, media
--     references dropped, and every earlier version (post_edits,
--     message_edits) deleted;
--   - 1:1 DMs: the pair unset (the channel and the other side's history
--     stay; it becomes a DM without a pair);
--   - communities it owns: handed to the oldest admin, else moderator, else
--     member (role 'owner', owner_id); one without another member is
--     deleted with everything in it;
--   - member_count of every community it belonged to, one less;
--   - modlog entries naming it as target: target_id NULL (actor_id goes by
--     its foreign key);
--   - pending events, pushes and mails that name it or go to its address;
--   - media rows deleted; the hashes of bytes no other row names queued in
--     media_erasures, which th-media-gc --erased removes from the store
--     (local or S3) at once, without the orphan collector's grace period;
--   - the user row deleted: email, username (free to register again),
--     password hash, TOTP secret; everything else keyed by it (tokens,
--     recovery codes, read markers, notifications to it, blocks both ways,
--     DM memberships, push subscriptions, reactions, memberships, bans,
--     calls it started) goes by ON DELETE CASCADE; notifications it caused
--     keep their row with actor NULL (ON DELETE SET NULL).

ALTER TABLE posts
    ALTER COLUMN author_id DROP NOT NULL,
    DROP CONSTRAINT posts_author_id_fkey,
    ADD CONSTRAINT posts_author_id_fkey FOREIGN KEY (author_id)
        REFERENCES users (id) ON DELETE SET NULL,
    DROP CONSTRAINT posts_body_check,
    ADD CONSTRAINT posts_body_check CHECK (char_length(body) BETWEEN 1 AND 40000
        OR (author_id IS NULL AND body = ''));

ALTER TABLE comments
    ALTER COLUMN author_id DROP NOT NULL,
    DROP CONSTRAINT comments_author_id_fkey,
    ADD CONSTRAINT comments_author_id_fkey FOREIGN KEY (author_id)
        REFERENCES users (id) ON DELETE SET NULL,
    DROP CONSTRAINT comments_body_check,
    ADD CONSTRAINT comments_body_check CHECK (char_length(body) BETWEEN 1 AND 10000
        OR (author_id IS NULL AND body = ''));

ALTER TABLE messages
    ALTER COLUMN sender_id DROP NOT NULL,
    DROP CONSTRAINT messages_sender_id_fkey,
    ADD CONSTRAINT messages_sender_id_fkey FOREIGN KEY (sender_id)
        REFERENCES users (id) ON DELETE SET NULL;

-- a revoked session outlives its account (see above); a direct DELETE of a
-- user still takes its sessions (ON DELETE CASCADE kept)
ALTER TABLE sessions ALTER COLUMN user_id DROP NOT NULL;

-- hashes of media bytes to remove now (th-media-gc --erased)
CREATE TABLE media_erasures (
    sha256    text PRIMARY KEY CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    queued_at timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION account_erase(p_user bigint)
RETURNS TABLE (what text, ref bigint, ref2 bigint, flag boolean)
LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    v_email text;
    v_uid text := p_user::text;
    c record;
    heir bigint;
    post_ids bigint[];
    touched bigint[];
    member_of bigint[];
    dm_of bigint[];
    message_ids uuid[];
BEGIN
    SELECT u.email INTO v_email FROM users u WHERE u.id = p_user FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;

    -- the communities whose feeds and access change (returned: the caller
    -- bumps their cache versions after the commit)
    SELECT coalesce(array_agg(DISTINCT t.cid), '{}') INTO touched FROM (
        SELECT p.community_id AS cid FROM posts p WHERE p.author_id = p_user
        UNION SELECT p.community_id FROM comments cm JOIN posts p ON p.id = cm.post_id
            WHERE cm.author_id = p_user
        UNION SELECT p.community_id FROM reactions r JOIN posts p ON p.id = r.post_id
            WHERE r.user_id = p_user
        UNION SELECT m.community_id FROM memberships m WHERE m.user_id = p_user
        UNION SELECT b.community_id FROM bans b WHERE b.user_id = p_user) t;

    SELECT coalesce(array_agg(m.community_id), '{}') INTO member_of
        FROM memberships m WHERE m.user_id = p_user;
    SELECT coalesce(array_agg(d.channel_id), '{}') INTO dm_of
        FROM dm_members d WHERE d.user_id = p_user;

    -- sessions: revoked, kept without the person
    DELETE FROM refresh_tokens t USING sessions s
        WHERE t.session_id = s.id AND s.user_id = p_user;
    RETURN QUERY
        WITH r AS (UPDATE sessions s SET revoked_at = coalesce(s.revoked_at, now()),
                          revoked_reason = 'account_erased', user_id = NULL,
                          client_addr = NULL, user_agent = ''
                   WHERE s.user_id = p_user RETURNING s.id)
        SELECT 'session'::text, r.id, NULL::bigint, NULL::boolean FROM r;

    -- what it wrote: no author, no body, no earlier versions (the edit
    -- triggers keep the old body as a version: those go after the update)
    DELETE FROM post_edits e USING posts p WHERE e.post_id = p.id AND p.author_id = p_user;
    DELETE FROM message_edits e USING messages m
        WHERE e.message_id = m.id AND m.sender_id = p_user;
    WITH u AS (UPDATE posts SET author_id = NULL, title = '', body = '', media_ids = '{}'
               WHERE author_id = p_user RETURNING id)
    SELECT coalesce(array_agg(u.id), '{}') INTO post_ids FROM u;
    UPDATE comments SET author_id = NULL, body = '' WHERE author_id = p_user;
    WITH u AS (UPDATE messages SET sender_id = NULL, body = '' WHERE sender_id = p_user
               RETURNING id)
    SELECT coalesce(array_agg(u.id), '{}') INTO message_ids FROM u;
    DELETE FROM post_edits WHERE post_id = ANY (post_ids);
    DELETE FROM message_edits WHERE message_id = ANY (message_ids);

    -- 1:1 DMs stay for the other side
    UPDATE channels SET pair_lo = NULL, pair_hi = NULL
        WHERE pair_lo = p_user OR pair_hi = p_user;

    -- communities it owns: the next in rank, else gone
    FOR c IN SELECT id FROM communities WHERE owner_id = p_user ORDER BY id FOR UPDATE LOOP
        SELECT m.user_id INTO heir FROM memberships m
            WHERE m.community_id = c.id AND m.user_id <> p_user
            ORDER BY CASE m.role WHEN 'owner' THEN 0 WHEN 'admin' THEN 1
                                 WHEN 'moderator' THEN 2 ELSE 3 END,
                     m.joined_at, m.user_id
            LIMIT 1;
        IF heir IS NULL THEN
            DELETE FROM communities WHERE id = c.id;
            what := 'community_gone'; ref := c.id; ref2 := NULL; flag := NULL;
        ELSE
            UPDATE communities SET owner_id = heir WHERE id = c.id;
            UPDATE memberships SET role = 'owner'
                WHERE community_id = c.id AND user_id = heir;
            what := 'owner'; ref := c.id; ref2 := heir; flag := NULL;
        END IF;
        RETURN NEXT;
    END LOOP;
    UPDATE communities k SET member_count = greatest(k.member_count - 1, 0)
        FROM memberships m WHERE m.community_id = k.id AND m.user_id = p_user;

    UPDATE modlog SET target_id = NULL WHERE target_type = 'user' AND target_id = v_uid;

    -- pending deliveries that name it
    DELETE FROM event_outbox WHERE payload ->> 'user_id' = v_uid
        OR payload ->> 'sender_id' = v_uid OR payload ->> 'author_id' = v_uid
        OR payload ->> 'actor_id' = v_uid;
    DELETE FROM push_outbox WHERE user_id = p_user
        OR payload -> 'notification' -> 'actor' ->> 'id' = v_uid;
    DELETE FROM mail_outbox WHERE user_id = p_user OR lower(to_addr) = lower(v_email);

    -- media: rows now, bytes by th-media-gc --erased
    INSERT INTO media_erasures (sha256)
        SELECT DISTINCT md.sha256 FROM media md WHERE md.owner_id = p_user
            AND NOT EXISTS (SELECT 1 FROM media o WHERE o.sha256 = md.sha256
                            AND o.owner_id IS DISTINCT FROM p_user)
        ON CONFLICT DO NOTHING;
    DELETE FROM media WHERE owner_id = p_user;

    DELETE FROM users WHERE id = p_user;
    -- what the caller mirrors to Redis (lib/mirror.h) and bumps (feed caches)
    RETURN QUERY SELECT 'community'::text, k.id, NULL::bigint, NULL::boolean
        FROM communities k WHERE k.id = ANY (touched);
    RETURN QUERY SELECT 'member_gone'::text, x.id, NULL::bigint, NULL::boolean
        FROM unnest(member_of) x(id);
    RETURN QUERY SELECT 'dm_gone'::text, x.id, NULL::bigint, NULL::boolean
        FROM unnest(dm_of) x(id);
    -- the others of its DMs: its blocks went, so whom it muted is not any more
    RETURN QUERY SELECT 'dm_member'::text, s.channel_id, s.user_id, s.muted
        FROM dm_member_state s WHERE s.channel_id = ANY (dm_of);
END
$fn$;

-- the senders delete failed rows after <env>_FAILED_KEEP_S (lib/outbox.c):
-- those rows, oldest first, without reading the table
CREATE INDEX mail_outbox_failed_idx ON mail_outbox (failed_at) WHERE failed_at IS NOT NULL;
CREATE INDEX push_outbox_failed_idx ON push_outbox (failed_at) WHERE failed_at IS NOT NULL;
