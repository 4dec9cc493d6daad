-- Chat messages, calls, and the event outbox (API.md: Channels, messages, calls).

-- Each channel numbers its stored messages 1, 2, 3, ... in commit order;
-- last_seq is the high-water mark, moved under the channel's row lock.
ALTER TABLE channels ADD COLUMN last_seq bigint NOT NULL DEFAULT 0;

CREATE TABLE messages (
    id         uuid PRIMARY KEY,          -- chosen by the client: idempotent
    channel_id bigint NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    seq        bigint NOT NULL,
    sender_id  bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    body       text   NOT NULL,
    reply_to   uuid,
    created_at timestamptz NOT NULL DEFAULT now(),
    edited_at  timestamptz,
    deleted_at timestamptz,               -- deleted messages keep their seq
    CONSTRAINT messages_seq_key UNIQUE (channel_id, seq),
    CONSTRAINT messages_body_check CHECK (char_length(body) BETWEEN 0 AND 4000)
);
-- history newest first and ?after= (oldest first) both walk this index

CREATE TABLE calls (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    channel_id   bigint NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    created_by   bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    ended_at     timestamptz
);
CREATE INDEX calls_channel_idx ON calls (channel_id) WHERE ended_at IS NULL;

CREATE TABLE call_participants (
    call_id   bigint NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    user_id   bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    joined_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (call_id, user_id)
);

-- Server events, written in the transaction of the change (lib/events.c)
-- and drained in id order by the bridge, which publishes them to MQTT and
-- deletes them.  pg_notify('townhall_events') only wakes the bridge up, so
-- an event committed while no bridge listens is still delivered later.
CREATE TABLE event_outbox (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    payload    jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
