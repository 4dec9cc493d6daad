-- Mail and the account tokens it carries (API.md, v1.1: Account lifecycle).
--
-- mail_outbox: one row per mail, written in the transaction of the action
-- that needs it (lib/mail.c mail_queue), so a mail exists exactly when its
-- action committed.  th-mailer (fcgi-apps/mail) claims due rows for a lease
-- (FOR UPDATE SKIP LOCKED: several senders may run; a sender that died with
-- a batch leaves it to the others when the lease ends), sends them over SMTP
-- and deletes a row once the server accepted it.  A failed attempt moves
-- next_at by a jittered exponential backoff; after the last attempt the row
-- stays with failed_at set and its params cleared (they may hold a token).
-- kind 'none' is a row the sender drops without sending: a password reset
-- asked for an unknown address writes one, so both answers commit the same
-- writes (no user enumeration by timing).
CREATE TABLE mail_outbox (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind          text NOT NULL CHECK (kind IN ('verify_email', 'password_reset',
                                                'email_change_notice', 'password_changed',
                                                'none')),
    to_addr       text NOT NULL CHECK (char_length(to_addr) BETWEEN 3 AND 254),
    user_id       bigint REFERENCES users (id) ON DELETE CASCADE,
    params        jsonb NOT NULL DEFAULT '{}' CHECK (octet_length(params::text) <= 4096),
    created_at    timestamptz NOT NULL DEFAULT now(),
    next_at       timestamptz NOT NULL DEFAULT now(),
    attempts      integer NOT NULL DEFAULT 0,
    claimed_by    text,
    claimed_until timestamptz,
    failed_at     timestamptz,
    last_error    text CHECK (char_length(last_error) <= 512)
);
CREATE INDEX mail_outbox_due_idx ON mail_outbox (next_at) WHERE failed_at IS NULL;
CREATE INDEX mail_outbox_user_id_idx ON mail_outbox (user_id);

-- When the address was proven by a mail reaching it; NULL: not yet.
ALTER TABLE users ADD COLUMN email_verified_at timestamptz;

-- Single-use tokens of the mails (verify an address, reset a password): 256
-- random bits, only their SHA-256 stored.  email is the address the token
-- proves: for an email change, the new one, which becomes the account's
-- when it is verified.
CREATE TABLE account_tokens (
    token_hash bytea PRIMARY KEY CHECK (octet_length(token_hash) = 32),
    user_id    bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind       text NOT NULL CHECK (kind IN ('verify_email', 'password_reset')),
    email      citext NOT NULL CHECK (char_length(email) BETWEEN 3 AND 254),
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);
CREATE INDEX account_tokens_user_id_idx ON account_tokens (user_id, kind);
