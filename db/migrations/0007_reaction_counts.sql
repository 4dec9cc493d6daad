-- Reaction counts kept on the post: {"emoji": count, ...}, no zero counts.
--
-- Every read of a post (feed pages, single posts, search) used to count its
-- reactions with a per-post aggregate subquery, a third of the feed query's
-- time (docs/benchmarks.md).  A row trigger keeps the counts instead, so they
-- follow every way a reaction row comes or goes: the API's PUT and DELETE
-- (an ON CONFLICT DO NOTHING that inserts nothing fires nothing), and the
-- cascades from a deleted user.  A deleted post's cascade finds no post row
-- to update.  Concurrent reactions on one post queue on the post's row lock
-- (FOR NO KEY UPDATE does not conflict with the foreign key checks' KEY
-- SHARE, so there is no lock upgrade to deadlock on).
ALTER TABLE posts ADD COLUMN reaction_counts jsonb NOT NULL DEFAULT '{}';

CREATE FUNCTION reactions_count() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE posts
           SET reaction_counts = jsonb_set(reaction_counts, ARRAY[NEW.emoji],
                   to_jsonb(COALESCE((reaction_counts ->> NEW.emoji)::bigint, 0) + 1))
         WHERE id = NEW.post_id;
    ELSE
        UPDATE posts
           SET reaction_counts = CASE
                   WHEN (reaction_counts ->> OLD.emoji)::bigint > 1
                   THEN jsonb_set(reaction_counts, ARRAY[OLD.emoji],
                            to_jsonb((reaction_counts ->> OLD.emoji)::bigint - 1))
                   ELSE reaction_counts - OLD.emoji END
         WHERE id = OLD.post_id;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER reactions_count AFTER INSERT OR DELETE ON reactions
    FOR EACH ROW EXECUTE FUNCTION reactions_count();

-- the counts of the reactions already there
UPDATE posts p SET reaction_counts = x.counts
FROM (SELECT post_id, jsonb_object_agg(emoji, n) AS counts
      FROM (SELECT post_id, emoji, count(*) AS n FROM reactions GROUP BY post_id, emoji) c
      GROUP BY post_id) x
WHERE x.post_id = p.id;
