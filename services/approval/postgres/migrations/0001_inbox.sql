-- +goose Up
-- The review inbox: a projection of GRANTLINE_EVENTS, rebuilt from the stream whenever it is lost.

-- Every request the projection has seen, with the substance a reviewer judges, and the stream sequence
-- of the request's last event it reflects (a delivery at or below it is already applied).
CREATE TABLE inbox_requests (
    request_id       text PRIMARY KEY,
    applied_seq      bigint NOT NULL,
    status           text NOT NULL,
    requester        text NOT NULL,
    subject_kind     text NOT NULL,
    subject_id       text NOT NULL,
    subject_owner    text NOT NULL,
    entitlement      text NOT NULL,
    justification    text NOT NULL,
    ticket           text NOT NULL,
    duration_seconds bigint NOT NULL,
    emergency        boolean NOT NULL,
    request_digest   text NOT NULL
);

-- What a request awaits now: one row per open approval stage, or its post-review (stage -1). The
-- groups array is what callers are matched against.
CREATE TABLE inbox_slots (
    request_id    text NOT NULL REFERENCES inbox_requests ON DELETE CASCADE,
    stage         integer NOT NULL,
    kind          text NOT NULL CHECK (kind IN ('review', 'post_review')),
    stage_name    text NOT NULL,
    groups        text[] NOT NULL,
    min_approvals integer NOT NULL,
    approvals     integer NOT NULL,
    deadline      timestamptz,
    overdue       boolean NOT NULL,
    PRIMARY KEY (request_id, stage)
);
CREATE INDEX inbox_slots_groups ON inbox_slots USING gin (groups);

-- People who may not act on a request whatever their groups: requester, subject, past reviewers.
CREATE TABLE inbox_excluded (
    request_id text NOT NULL REFERENCES inbox_requests ON DELETE CASCADE,
    person     text NOT NULL,
    PRIMARY KEY (request_id, person)
);

-- How far into the stream the projection has applied, written in the same transaction as the rows.
CREATE TABLE inbox_checkpoint (
    stream   text PRIMARY KEY,
    last_seq bigint NOT NULL
);
INSERT INTO inbox_checkpoint (stream, last_seq) VALUES ('GRANTLINE_EVENTS', 0);
