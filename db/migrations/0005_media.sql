-- Media (API.md: Media).  One row per upload; the bytes are content-addressed
-- by the SHA-256 of the stored original, so equal files are stored once and
-- the bytes go when the last row that names the hash is deleted.
--
-- Traceability (issue 7): owner_id names who stored it; posts.media_ids
-- (0003) names the posts that use it.  A deleted post leaves its media:
-- only the owner deletes them.  A deleted community leaves its media as the
-- owner's profile media (community_id NULL) until the owner deletes them.

CREATE TABLE media (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    owner_id     bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    community_id bigint REFERENCES communities (id) ON DELETE SET NULL,
    kind         text NOT NULL,
    mime         text NOT NULL,
    size         bigint NOT NULL,          -- bytes of the stored original
    sha256       text NOT NULL,            -- hex, of the stored original
    width        integer,
    height       integer,
    filename     text NOT NULL,
    -- {"thumb": {"mime", "size", "sha256", "width", "height"}, "medium": {...}}
    variants     jsonb NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT media_kind_check CHECK (kind IN ('image', 'video', 'audio', 'pdf')),
    CONSTRAINT media_size_check CHECK (size >= 0),
    CONSTRAINT media_sha256_check CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    CONSTRAINT media_filename_check CHECK (char_length(filename) BETWEEN 1 AND 255)
);
-- the quota: SUM(size) WHERE owner_id = $1
CREATE INDEX media_owner_idx ON media (owner_id);
-- delete: does another row still name these bytes?
CREATE INDEX media_sha256_idx ON media (sha256);
-- posts that use a medium: WHERE media_ids @> ARRAY[$1]
CREATE INDEX posts_media_ids_idx ON posts USING gin (media_ids);
