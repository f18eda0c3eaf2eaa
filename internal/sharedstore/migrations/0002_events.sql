-- Session events: one hash chain per gateway (seq and prev_hash per
-- gateway); line is the event exactly as hashed, the columns its indexes.
CREATE TABLE pgwarden.events (
    gateway text NOT NULL,
    seq     bigint NOT NULL,
    session text NOT NULL DEFAULT '',
    type    text NOT NULL,
    time    timestamptz NOT NULL,
    line    text NOT NULL,
    PRIMARY KEY (gateway, seq)
);
CREATE INDEX events_session ON pgwarden.events (session) WHERE session <> '';
CREATE INDEX events_time ON pgwarden.events (time);
