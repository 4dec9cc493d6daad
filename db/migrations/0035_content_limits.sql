-- Content limits per community (issue 23 point 3, API.md v1.1 "Moderation"),
-- beside slow mode (communities.slow_mode_seconds, migration 0030). Both are
-- enforced the same over REST and MQTT for members below moderator
-- (lib/modrule.h); site admins are exempt too.
--   max_message_length  a message body of at most this many characters
--                       (1..4000, the global limit, which is the default);
--   links_allowed       false: no http://, https:// or www. in a message.
ALTER TABLE communities
    ADD COLUMN max_message_length integer NOT NULL DEFAULT 4000,
    ADD COLUMN links_allowed boolean NOT NULL DEFAULT true,
    ADD CONSTRAINT communities_max_message_length_check
        CHECK (max_message_length BETWEEN 1 AND 4000);
