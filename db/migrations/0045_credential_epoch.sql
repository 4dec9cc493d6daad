-- Sessions start only from credentials that are still current
-- (fcgi-apps/auth: sessions.c, oidc.c, recovery.c, verify.c, admin.c).
--
-- 1. users.credential_epoch moves (+1) in the transaction of whatever
--    withdraws the account's credentials and revokes its sessions: a
--    password reset, a password change, a suspension.  A sign-in reads it
--    with what it checks (the password hash, the identity) and creates its
--    session with one statement that takes the users row FOR SHARE and
--    requires the epoch unchanged and no suspension.  A revocation revokes
--    only the sessions that exist when it runs: a login that checked the old
--    password before a reset and inserted its session after it got a
--    session that survived the reset.  Now either the session's statement
--    holds the row first (the reset's UPDATE waits for it, and its
--    revocation then sees the session) or it waits for the reset's commit
--    and finds the epoch moved (no session).
-- 2. oidc_states.credential_epoch: the epoch a provider's sign-in read, kept
--    with the row that waits for the account's one-time code (TOTP), so the
--    second step creates no session after a reset that came between.

ALTER TABLE users ADD COLUMN credential_epoch bigint NOT NULL DEFAULT 0;
ALTER TABLE oidc_states ADD COLUMN credential_epoch bigint;
