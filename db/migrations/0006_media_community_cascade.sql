-- A private community's media must not turn into public profile media when the
-- community is deleted (community_id NULL means "profile"): their rows go with
-- the community.  The bytes stay until no row shares their hash; nothing can
-- reach them without a row.
ALTER TABLE media DROP CONSTRAINT media_community_id_fkey,
    ADD CONSTRAINT media_community_id_fkey FOREIGN KEY (community_id)
        REFERENCES communities (id) ON DELETE CASCADE;
