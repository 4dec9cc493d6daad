-- Moderation's shared schema (API.md v1.1 "Moderation"): the modlog, slow
-- mode, site admins and suspension. What writes to these comes in later
-- migrations; this one only fixes their shape so every writer agrees on it.
--
-- modlog: one row per moderator action, written in the transaction of the
-- action. community_id NULL marks a site-wide entry (a site admin's
-- suspension). target_id is text because targets are bigint (posts,
-- comments, users, communities, channels, reports) or uuid (messages); it
-- becomes NULL when the target's account is erased, and actor_id NULL when the
-- actor's is: the entry stays, the person does not.
CREATE TABLE modlog (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    community_id bigint REFERENCES communities (id) ON DELETE CASCADE,
    actor_id     bigint REFERENCES users (id) ON DELETE SET NULL,
    action       text NOT NULL,
    target_type  text NOT NULL,
    target_id    text,
    note         text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT modlog_action_check CHECK (action ~ '^[a-z_]{1,40}$'),
    CONSTRAINT modlog_target_type_check CHECK (target_type IN
        ('post', 'comment', 'message', 'user', 'community', 'channel', 'report')),
    CONSTRAINT modlog_target_id_check CHECK (char_length(target_id) <= 64),
    CONSTRAINT modlog_note_check CHECK (char_length(note) <= 2000)
);
-- a community's log newest first; the site log (community_id NULL) likewise
CREATE INDEX modlog_community_idx ON modlog (community_id, id DESC);
CREATE INDEX modlog_site_idx ON modlog (id DESC) WHERE community_id IS NULL;
CREATE INDEX modlog_actor_idx ON modlog (actor_id) WHERE actor_id IS NOT NULL;

-- Slow mode: members below moderator may send one message per channel per
-- N seconds (0 = off; at most a day).
ALTER TABLE communities
    ADD COLUMN slow_mode_seconds integer NOT NULL DEFAULT 0,
    ADD CONSTRAINT communities_slow_mode_check CHECK (slow_mode_seconds BETWEEN 0 AND 86400);

-- Site admins act in any community; a suspended account cannot sign in.
ALTER TABLE users
    ADD COLUMN is_admin boolean NOT NULL DEFAULT false,
    ADD COLUMN suspended_at timestamptz;
