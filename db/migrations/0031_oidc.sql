-- OIDC login (API.md v1.1 "Account lifecycle", the oidc row).
--
-- user_identities: an account linked to a subject of a configured provider;
-- removed with the account (ON DELETE CASCADE). One subject of one provider
-- reaches one account; an account may hold several identities.
CREATE TABLE user_identities (
    provider   text   NOT NULL,
    subject    text   NOT NULL,
    user_id    bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, subject),
    CONSTRAINT user_identities_provider_check CHECK (provider ~ '^[a-z0-9_]{1,32}$'),
    CONSTRAINT user_identities_subject_check CHECK (char_length(subject) BETWEEN 1 AND 255)
);
CREATE INDEX user_identities_user_id_idx ON user_identities (user_id);

-- oidc_states: one authorization request in flight, between /start and
-- /callback. PostgreSQL rather than Redis: the state is single use, and a
-- DELETE ... RETURNING on the primary takes it exactly once even when two
-- callbacks race, and it survives a Redis failover in the middle of a login
-- (Redis holds what can be rebuilt; this cannot). Rows live 10 minutes;
-- /start deletes expired ones. Only hashes of the state and of the browser
-- cookie are stored; nonce and PKCE verifier are needed as is (the verifier
-- goes to the token endpoint). user_id is set when the provider's login
-- succeeded and our one-time code (TOTP) is still due: the same row then
-- waits for the code, once.
CREATE TABLE oidc_states (
    state_hash    bytea PRIMARY KEY CHECK (octet_length(state_hash) = 32),
    browser_hash  bytea NOT NULL CHECK (octet_length(browser_hash) = 32),
    provider      text  NOT NULL,
    nonce         text  NOT NULL,
    code_verifier text  NOT NULL,
    redirect_uri  text  NOT NULL CHECK (char_length(redirect_uri) <= 512),
    user_id       bigint REFERENCES users (id) ON DELETE CASCADE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL
);
CREATE INDEX oidc_states_expires_at_idx ON oidc_states (expires_at);

-- An account created by an OIDC login has no password until it sets one
-- through the reset mail: password_hash NULL never verifies (the login
-- hashes against a dummy, as for an unknown login).
ALTER TABLE users ALTER COLUMN password_hash DROP NOT NULL;
