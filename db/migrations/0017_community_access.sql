-- The one source of "what is this user's standing in this community": the
-- community's visibility and owner, the user's role (null: no member) and
-- whether they are banned.  Every access check of the apps reads it
-- (lib/policy.c decides from it: community, channel, post, medium),
-- so the rule "private communities are invisible to non-members, banned
-- users may not act, roles rank" has one place in SQL and one in C.
-- p_user 0 is an anonymous caller (no role, no ban).
--
-- A single-SELECT SQL function, STABLE, not STRICT: the planner inlines it
-- into the caller's query (FROM channels ch, LATERAL community_access(...)),
-- so the plan is the join each app wrote by hand before.
CREATE FUNCTION community_access(p_user bigint, p_community bigint)
RETURNS TABLE (is_public boolean, owner_id bigint, role text, banned boolean)
LANGUAGE sql STABLE AS $fn$
    SELECT c.visibility = 'public', c.owner_id, m.role, b.user_id IS NOT NULL
    FROM communities c
    LEFT JOIN memberships m ON m.community_id = c.id AND m.user_id = p_user
    LEFT JOIN bans b ON b.community_id = c.id AND b.user_id = p_user
    WHERE c.id = p_community
$fn$;
