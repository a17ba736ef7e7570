-- +goose Up
-- Findings: Grantline-shaped access a target showed that no request explains, recorded by the revoker's
-- reconciler as a drift_detected event under a finding ID of its own (events.FindingID). A finding is
-- not a request, so it has a table of its own; its event is in audit_index like every other.
CREATE TABLE findings (
    id          text PRIMARY KEY,
    connector   text NOT NULL,
    target_ref  text NOT NULL,
    observed    jsonb NOT NULL,
    found_at    timestamptz NOT NULL,
    last_seq    bigint NOT NULL,
    view        jsonb NOT NULL,         -- what GET /v1/findings shows
    updated_at  timestamptz NOT NULL DEFAULT now()
);
