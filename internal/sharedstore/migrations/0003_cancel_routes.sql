-- Cancel keys (the BackendKeyData a gateway hands its clients) and the
-- gateway that issued each, so a CancelRequest reaching any gateway is
-- forwarded to the one holding the session.
CREATE TABLE pgwarden.cancel_routes (
    pid        bigint PRIMARY KEY,
    secret     bytea NOT NULL,
    gateway    text NOT NULL,
    advertise  text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX cancel_routes_gateway ON pgwarden.cancel_routes (gateway);
