-- A post's media as the JSON array its readers get (before the variant URLs
-- the app adds): the rows of ids, in ids order, '[]' when none is left.
--
-- Why a function and not the subquery it was in the post queries: PostgreSQL
-- initializes every node of a query's plan at each execution, run or not, so
-- a media subquery in a feed page's SELECT opened and locked media,
-- communities and their indexes for every page, even one whose posts have no
-- media (nearly all), and that was about 40 % of the feed query's time
-- (docs/benchmarks.md).  The posts' query calls this only for a post with
-- media ids; PL/pgSQL plans its statement once per connection.  The
-- timestamp format is the app's (TH_TIME_SQL, fcgi-apps/lib/user.h).
CREATE FUNCTION post_media_json(ids uuid[]) RETURNS text
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN COALESCE((
        SELECT json_agg(json_build_object('id', md.id, 'owner_id', md.owner_id,
                   'community_id', md.community_id, 'kind', md.kind, 'mime', md.mime,
                   'size', md.size, 'sha256', md.sha256, 'width', md.width,
                   'height', md.height, 'filename', md.filename,
                   'created_at', to_char(md.created_at AT TIME ZONE 'UTC',
                                         'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
                   'public', md.community_id IS NULL OR mc.visibility = 'public')
                   ORDER BY array_position(ids, md.id))::text
        FROM media md LEFT JOIN communities mc ON mc.id = md.community_id
        WHERE md.id = ANY (ids)), '[]');
END
$$;
