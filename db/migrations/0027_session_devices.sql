-- Sessions a user can see and end (API.md v1.1 "Account lifecycle":
-- GET /api/auth/sessions, DELETE /api/auth/sessions/:id): the device's
-- User-Agent as it signed in (printable ASCII, at most 256 bytes, cut by
-- fcgi-apps/auth/sessions.c).  Its last use is last_refreshed_at: access
-- tokens are checked without the database, so a session is seen each time
-- it refreshes (at least once an access-token lifetime while in use).
ALTER TABLE sessions
    ADD COLUMN user_agent text NOT NULL DEFAULT '',
    ADD CONSTRAINT sessions_user_agent_check CHECK (octet_length(user_agent) <= 256);
-- the caller's live sessions, most recently used first
CREATE INDEX sessions_user_live_idx ON sessions (user_id, last_refreshed_at DESC)
    WHERE revoked_at IS NULL;
