-- A second factor (API.md v1.1 "Account lifecycle": TOTP, RFC 6238).
-- totp_secret: the factor's secret once enabled (20 random bytes; stored as
-- is: the server must compute codes from it); totp_pending: a secret set up
-- but not yet confirmed with a code (10 minutes); totp_last_step: the time
-- step of the last code accepted, so a code is used once (RFC 6238 5.2).
-- Recovery codes are stored as SHA-256 (high-entropy, single-use).
ALTER TABLE users
    ADD COLUMN totp_secret bytea,
    ADD COLUMN totp_enabled_at timestamptz,
    ADD COLUMN totp_pending bytea,
    ADD COLUMN totp_pending_at timestamptz,
    ADD COLUMN totp_last_step bigint,
    ADD CONSTRAINT users_totp_check CHECK ((totp_secret IS NULL) = (totp_enabled_at IS NULL));

CREATE TABLE totp_recovery_codes (
    user_id   bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash bytea  NOT NULL,
    used_at   timestamptz,
    PRIMARY KEY (user_id, code_hash)
);
