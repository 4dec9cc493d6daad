-- The bridge deletes an event only after the broker acknowledged every
-- publish of it (PUBACK), which takes a round trip per in-flight window; no
-- transaction stays open meanwhile.  Instead a bridge claims a batch for a
-- lease: other bridges skip claimed rows until the lease ends, so a bridge
-- that died with a batch out leaves it to the others after the lease
-- (realtime-bridge/bridge/relay.c).  At least once: a batch whose
-- acknowledgements did not all come is published again.  attempts counts
-- the times a batch the broker acknowledged with "no matching subscribers"
-- (no edge attached to the hub yet, after a restart) was published again;
-- at a bound it is dropped and counted.
ALTER TABLE event_outbox
    ADD COLUMN claimed_by    text,
    ADD COLUMN claimed_until timestamptz,
    ADD COLUMN attempts      integer NOT NULL DEFAULT 0;
