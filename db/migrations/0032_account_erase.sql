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

-- what an account wrote, by author: the erasure's batches, the export's
-- keyset pages, and the ON DELETE SET NULL of a user row, without reading
-- the tables whole
CREATE INDEX posts_author_idx ON posts (author_id, id) WHERE author_id IS NOT NULL;
CREATE INDEX comments_author_idx ON comments (author_id, id) WHERE author_id IS NOT NULL;
CREATE INDEX messages_sender_idx ON messages (sender_id, id) WHERE sender_id IS NOT NULL;
CREATE INDEX channels_pair_hi_idx ON channels (pair_hi) WHERE pair_hi IS NOT NULL;
CREATE INDEX modlog_target_user_idx ON modlog (target_id) WHERE target_type = 'user';
-- and a deleted comment's answers (ON DELETE CASCADE looks them up once a
-- deleted comment: without it, deleting many comments read the table once
-- a row)
CREATE INDEX comments_parent_idx ON comments (parent_id) WHERE parent_id IS NOT NULL;

-- hashes of media bytes to remove now (th-media-gc --erased)
CREATE TABLE media_erasures (
    sha256    text PRIMARY KEY CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    queued_at timestamptz NOT NULL DEFAULT now()
);

-- At most p_limit (NULL: all) of each of the account's posts, comments and
-- messages: no author, no body (posts: no title, no media), no earlier
-- versions (the edit triggers keep the old body as a version: those go after
-- the update too); and as many comments, posts and messages of the communities
-- account_erase() will delete.  Rows ('community', id) for the communities whose feeds
-- changed, then ('content', how many rows changed).  The API runs it in
-- committed batches before account_erase(), so that no statement of a large
-- account outlasts the statement timeout; a request cut short leaves some
-- of it done, and the next DELETE goes on from there.
CREATE FUNCTION account_erase_content(p_user bigint, p_limit integer)
RETURNS TABLE (what text, ref bigint, ref2 bigint, flag boolean)
LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    post_ids bigint[];
    comment_ids bigint[];
    message_ids uuid[];
    gone bigint;
BEGIN
    SELECT coalesce(array_agg(x.id), '{}') INTO post_ids
        FROM (SELECT p.id FROM posts p WHERE p.author_id = p_user ORDER BY p.id LIMIT p_limit) x;
    SELECT coalesce(array_agg(x.id), '{}') INTO comment_ids
        FROM (SELECT c.id FROM comments c WHERE c.author_id = p_user ORDER BY c.id LIMIT p_limit) x;
    SELECT coalesce(array_agg(x.id), '{}') INTO message_ids
        FROM (SELECT m.id FROM messages m WHERE m.sender_id = p_user ORDER BY m.id LIMIT p_limit) x;
    RETURN QUERY SELECT DISTINCT 'community'::text, t.cid, NULL::bigint, NULL::boolean FROM (
        SELECT p.community_id AS cid FROM posts p WHERE p.id = ANY (post_ids)
        UNION SELECT p.community_id FROM comments cm JOIN posts p ON p.id = cm.post_id
            WHERE cm.id = ANY (comment_ids)) t;
    DELETE FROM post_edits WHERE post_id = ANY (post_ids);
    DELETE FROM message_edits WHERE message_id = ANY (message_ids);
    UPDATE posts SET author_id = NULL, title = '', body = '', media_ids = '{}'
        WHERE id = ANY (post_ids);
    UPDATE comments SET author_id = NULL, body = '' WHERE id = ANY (comment_ids);
    UPDATE messages SET sender_id = NULL, body = '' WHERE id = ANY (message_ids);
    DELETE FROM post_edits WHERE post_id = ANY (post_ids);
    DELETE FROM message_edits WHERE message_id = ANY (message_ids);
    -- the communities account_erase() will delete (owned, no other member):
    -- their comments, posts (once without comments) and messages go here, in
    -- batches, not all in its one statement
    WITH doomed AS (SELECT k.id FROM communities k WHERE k.owner_id = p_user
                    AND NOT EXISTS (SELECT 1 FROM memberships m WHERE m.community_id = k.id
                                    AND m.user_id <> p_user)),
         dc AS (DELETE FROM comments WHERE id IN (SELECT c.id FROM comments c
                JOIN posts p ON p.id = c.post_id
                WHERE p.community_id IN (SELECT id FROM doomed) LIMIT p_limit) RETURNING 1),
         dp AS (DELETE FROM posts WHERE id IN (SELECT p.id FROM posts p
                WHERE p.community_id IN (SELECT id FROM doomed)
                AND NOT EXISTS (SELECT 1 FROM comments c WHERE c.post_id = p.id)
                LIMIT p_limit) RETURNING 1),
         dm AS (DELETE FROM messages WHERE id IN (SELECT m.id FROM messages m
                JOIN channels ch ON ch.id = m.channel_id
                WHERE ch.community_id IN (SELECT id FROM doomed) LIMIT p_limit) RETURNING 1)
    SELECT (SELECT count(*) FROM dc) + (SELECT count(*) FROM dp) + (SELECT count(*) FROM dm)
        INTO gone;
    RETURN QUERY SELECT 'content'::text,
        (cardinality(post_ids) + cardinality(comment_ids) + cardinality(message_ids)) + gone,
        NULL::bigint, NULL::boolean;
END
$fn$;

CREATE FUNCTION account_erase(p_user bigint)
RETURNS TABLE (what text, ref bigint, ref2 bigint, flag boolean)
LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    v_email text;
    v_uid text := p_user::text;
    c record;
    heir bigint;
    touched bigint[];
    member_of bigint[];
    dm_of bigint[];
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

    -- what it wrote (whatever the batches before left)
    RETURN QUERY SELECT * FROM account_erase_content(p_user, NULL);

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
