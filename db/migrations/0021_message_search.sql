-- Search over messages (issue 21 point 5): a stored tsvector of each
-- message's body, 'simple' like posts.search (any language word for word),
-- and a GIN index.  A deleted message's body is '' (it matches nothing).
-- GET /api/messages/search (fcgi-apps/realtime/search.c) ranks by the rules
-- of fcgi-apps/lib/textsearch.h, the same as post search.
ALTER TABLE messages
    ADD COLUMN search tsvector GENERATED ALWAYS AS (to_tsvector('simple', body)) STORED;
CREATE INDEX messages_search_idx ON messages USING gin (search);
