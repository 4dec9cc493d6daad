-- Communities, members, bans, channels, posts, comments, reactions
-- (API.md: Communities and members; Posts, comments, reactions, search).
--
-- Lists are keyset-paginated on the identity column (newest first = highest
-- id first), so every list has an index that serves "WHERE key < cursor
-- ORDER BY key DESC LIMIT n" without a sort.

CREATE TABLE communities (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slug         text NOT NULL,
    name         text NOT NULL,
    description  text NOT NULL DEFAULT '',
    visibility   text NOT NULL,
    owner_id     bigint NOT NULL REFERENCES users (id),
    member_count integer NOT NULL DEFAULT 0,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT communities_slug_key UNIQUE (slug),
    CONSTRAINT communities_slug_check CHECK (slug ~ '^[a-z0-9-]{3,40}$'),
    CONSTRAINT communities_name_check CHECK (char_length(name) BETWEEN 1 AND 100),
    CONSTRAINT communities_description_check CHECK (char_length(description) <= 2000),
    CONSTRAINT communities_visibility_check CHECK (visibility IN ('public', 'private')),
    CONSTRAINT communities_member_count_check CHECK (member_count >= 0)
);
-- the public listing walks public communities newest first
CREATE INDEX communities_public_idx ON communities (id DESC) WHERE visibility = 'public';

CREATE TABLE memberships (
    community_id bigint NOT NULL REFERENCES communities (id) ON DELETE CASCADE,
    user_id      bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role         text NOT NULL,
    joined_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (community_id, user_id),
    CONSTRAINT memberships_role_check CHECK (role IN ('owner', 'admin', 'moderator', 'member'))
);
CREATE INDEX memberships_user_idx ON memberships (user_id, community_id);

CREATE TABLE bans (
    community_id bigint NOT NULL REFERENCES communities (id) ON DELETE CASCADE,
    user_id      bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    banned_by    bigint REFERENCES users (id) ON DELETE SET NULL,
    reason       text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (community_id, user_id),
    CONSTRAINT bans_reason_check CHECK (char_length(reason) <= 500)
);

CREATE TABLE channels (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    community_id bigint NOT NULL REFERENCES communities (id) ON DELETE CASCADE,
    name         text NOT NULL,
    topic        text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT channels_name_key UNIQUE (community_id, name),
    CONSTRAINT channels_name_check CHECK (name ~ '^[a-z0-9_-]{1,64}$'),
    CONSTRAINT channels_topic_check CHECK (char_length(topic) <= 500)
);

CREATE TABLE posts (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    community_id  bigint NOT NULL REFERENCES communities (id) ON DELETE CASCADE,
    author_id     bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title         text NOT NULL DEFAULT '',
    body          text NOT NULL,
    media_ids     uuid[] NOT NULL DEFAULT '{}',
    comment_count integer NOT NULL DEFAULT 0,
    created_at    timestamptz NOT NULL DEFAULT now(),
    edited_at     timestamptz,
    -- 'simple': no language guess, so any language is matched word for word
    search        tsvector GENERATED ALWAYS AS (
                      setweight(to_tsvector('simple', title), 'A') ||
                      setweight(to_tsvector('simple', body), 'B')) STORED,
    CONSTRAINT posts_title_check CHECK (char_length(title) <= 300),
    CONSTRAINT posts_body_check CHECK (char_length(body) BETWEEN 1 AND 40000),
    CONSTRAINT posts_comment_count_check CHECK (comment_count >= 0)
);
-- the feed: WHERE community_id = $1 AND id < $cursor ORDER BY id DESC LIMIT n
CREATE INDEX posts_feed_idx ON posts (community_id, id DESC);
CREATE INDEX posts_search_idx ON posts USING gin (search);

CREATE TABLE comments (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    post_id    bigint NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    author_id  bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    parent_id  bigint REFERENCES comments (id) ON DELETE CASCADE,
    body       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    edited_at  timestamptz,
    CONSTRAINT comments_body_check CHECK (char_length(body) BETWEEN 1 AND 10000)
);
-- oldest first within a post
CREATE INDEX comments_post_idx ON comments (post_id, id);

CREATE TABLE reactions (
    post_id    bigint NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    user_id    bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    emoji      text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (post_id, user_id, emoji),
    CONSTRAINT reactions_emoji_check CHECK (octet_length(emoji) BETWEEN 1 AND 32)
);
-- "my reactions" on a page of posts
CREATE INDEX reactions_user_idx ON reactions (user_id, post_id);
