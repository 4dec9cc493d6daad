-- Accounts and sessions (API.md, Auth).
--
-- A session is one sign-in: it owns a chain of single-use refresh tokens and
-- every access token minted from them carries its id (`sid`).  Revoking the
-- session (logout, refresh-token reuse) is what makes all of them stop.
-- PostgreSQL is the truth for revocation; Redis only holds a hot copy.

CREATE TABLE users (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email         citext NOT NULL,
    username      text   NOT NULL,
    display_name  text   NOT NULL,
    password_hash text   NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_email_key UNIQUE (email),
    CONSTRAINT users_username_key UNIQUE (username),
    CONSTRAINT users_username_check CHECK (username ~ '^[a-z0-9_]{3,32}$'),
    CONSTRAINT users_email_check CHECK (char_length(email) BETWEEN 3 AND 254),
    CONSTRAINT users_display_name_check CHECK (char_length(display_name) BETWEEN 1 AND 64)
);

CREATE TABLE sessions (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id           bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at        timestamptz NOT NULL DEFAULT now(),
    last_refreshed_at timestamptz NOT NULL DEFAULT now(),
    revoked_at        timestamptz,
    revoked_reason    text,
    client_addr       text
);
CREATE INDEX sessions_user_id_idx ON sessions (user_id);
-- rebuilding the hot revocation list reads the recent revocations only
CREATE INDEX sessions_revoked_at_idx ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;

-- Refresh tokens are 256 random bits; only their SHA-256 is stored, so a
-- leaked table grants nothing.  used_at makes each one single-use.
CREATE TABLE refresh_tokens (
    token_hash bytea PRIMARY KEY CHECK (octet_length(token_hash) = 32),
    session_id bigint NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);
CREATE INDEX refresh_tokens_session_id_idx ON refresh_tokens (session_id);
