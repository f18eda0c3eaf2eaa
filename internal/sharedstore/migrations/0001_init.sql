-- pgwarden shared store, schema version 1: everything in one schema.
CREATE SCHEMA IF NOT EXISTS pgwarden;

-- Gateways sharing the store, with their heartbeats (cluster.dead_after).
CREATE TABLE pgwarden.gateways (
    id           text PRIMARY KEY,
    advertise    text NOT NULL DEFAULT '',
    started_at   timestamptz NOT NULL,
    heartbeat_at timestamptz NOT NULL,
    stopped_at   timestamptz,          -- a clean stop; NULL while running
    lost_at      timestamptz,          -- set by the gateway that found it dead
    lost_by      text
);

-- Approval requests: the JSON record is what the API returns; the columns
-- beside it are its indexes (open requests, retry-mode claims, listing).
CREATE TABLE pgwarden.approvals (
    id          text PRIMARY KEY,
    state       text NOT NULL,
    mode        text NOT NULL,
    gateway     text NOT NULL,
    session     text NOT NULL DEFAULT '',
    fingerprint text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL,
    record      jsonb NOT NULL
);
CREATE INDEX approvals_open ON pgwarden.approvals (gateway) WHERE state IN ('pending', 'approved');
CREATE INDEX approvals_claim ON pgwarden.approvals (fingerprint) WHERE state = 'approved' AND mode = 'retry';
CREATE INDEX approvals_created ON pgwarden.approvals (created_at DESC, id);
