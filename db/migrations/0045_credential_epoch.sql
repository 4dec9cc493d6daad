-- Sessions start only from credentials that are still current, and an
-- identity of a provider reaches an account only when the account's address
-- was proven when it was linked (fcgi-apps/auth: sessions.c, oidc.c,
-- recovery.c, verify.c, admin.c).
--
-- 1. users.credential_epoch moves (+1) in the transaction of whatever
--    withdraws the account's credentials and revokes its sessions: a
--    password reset, a password change, a suspension, provisional
--    identities dropped (3.).  A sign-in reads it with what it checks (the
--    password hash, the identity) and creates its session with one statement
--    that takes the users row FOR SHARE and requires the epoch unchanged and
--    no suspension.  A revocation revokes only the sessions that exist when
--    it runs: a login that checked the old password before a reset and
--    inserted its session after it got a session that survived the reset.
--    Now either the session's statement holds the row first (the reset's
--    UPDATE waits for it, and its revocation then sees the session) or it
--    waits for the reset's commit and finds the epoch moved (no session).
-- 2. oidc_states.credential_epoch: the epoch a provider's sign-in read, kept
--    with the row that waits for the account's one-time code (TOTP), so the
--    second step creates no session after a reset that came between.
-- 3. user_identities.address_proven: whether the account's address was
--    proven (verified here) when the identity was linked.  From now on an
--    identity is linked only then (a provider's unverified address makes no
--    account: oidc.c), so every new row says true.  Before, a sign-in whose
--    provider did not vouch for the address (email_verified false) made an
--    account with that address and linked the identity: anyone could make
--    an account with someone else's address, and when its owner took the
--    account over (a reset; registering the address is refused) the
--    identity still signed in to it.  Such provisional links still sign in
--    until the address is proven: then they are dropped (a reset, a
--    verification) and the account's sessions revoked.
--    The rows so far: proven when the address was verified at or before
--    the link (a verification after the link, e.g. an address changed since,
--    also counts as after: such a link is treated as provisional, the safe
--    side).  A provisional link whose address has been proven since is the
--    state the old code left a taken-over account in: it is dropped now, the
--    account's sessions revoked and its epoch moved.  Revoked here, the
--    sessions' refresh tokens stop at once; their access tokens (15 minutes)
--    stop when the workers' revocation list is rebuilt from PostgreSQL or
--    expire.

ALTER TABLE users ADD COLUMN credential_epoch bigint NOT NULL DEFAULT 0;
ALTER TABLE oidc_states ADD COLUMN credential_epoch bigint;
-- false unless said: a link made by a path that does not say is provisional
ALTER TABLE user_identities ADD COLUMN address_proven boolean NOT NULL DEFAULT false;

UPDATE user_identities i SET address_proven = true
    FROM users u
    WHERE u.id = i.user_id AND u.email_verified_at IS NOT NULL
      AND u.email_verified_at <= i.created_at;

WITH gone AS (
    DELETE FROM user_identities i
        USING users u
        WHERE u.id = i.user_id AND NOT i.address_proven
          AND u.email_verified_at IS NOT NULL
        RETURNING i.user_id),
bumped AS (
    UPDATE users u SET credential_epoch = u.credential_epoch + 1
        WHERE u.id IN (SELECT user_id FROM gone))
UPDATE sessions s SET revoked_at = now(), revoked_reason = 'identity_unproven'
    WHERE s.user_id IN (SELECT user_id FROM gone) AND s.revoked_at IS NULL;
