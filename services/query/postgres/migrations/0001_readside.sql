-- +goose Up
-- The read side: projections of GRANTLINE_EVENTS. Every table can be dropped and rebuilt from the
-- stream; a rebuild runs into a fresh schema beside the live one and Compare checks the two agree.
-- Migrate runs this with search_path set to the projection's schema. updated_at columns are the
-- projection's own bookkeeping and the only ones Compare ignores.

-- One row per request, as of the stream sequence of its last verified event (last_seq).
CREATE TABLE requests (
    id                text PRIMARY KEY,
    status            text NOT NULL,
    requester         text NOT NULL,
    subject_kind      text NOT NULL,
    subject_id        text NOT NULL,
    subject_owner     text NOT NULL,
    entitlement       text NOT NULL,
    justification     text NOT NULL,
    ticket            text NOT NULL,
    duration_seconds  bigint NOT NULL,
    emergency         boolean NOT NULL,
    channel           text NOT NULL,
    submitted_at      timestamptz NOT NULL,
    outcome           text NOT NULL,          -- the policy decision's outcome; '' before it
    policy_revision   text NOT NULL,
    approvers         text[] NOT NULL,
    -- who decides on it (stage and post-review groups), what is open for review now, who reviewed
    review_groups     text[] NOT NULL,
    open_groups       text[] NOT NULL,
    reviewers         text[] NOT NULL,
    granted_at        timestamptz,
    expires_at        timestamptz,
    observed          jsonb,                  -- the entitlement on the target when granted
    revocation_due    text NOT NULL,
    revocation_reason text NOT NULL,
    revoked_at        timestamptz,
    last_seq          bigint NOT NULL,
    version           integer NOT NULL,
    view              jsonb NOT NULL,         -- what GET /v1/requests shows
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX requests_status ON requests (status, id);
CREATE INDEX requests_requester ON requests (requester, id);
CREATE INDEX requests_entitlement ON requests (entitlement, id);
CREATE INDEX requests_open_groups ON requests USING gin (open_groups) WHERE status = 'pending_approval';

-- Every review of an approval stage, and the post-review of an emergency grant (stage -1).
CREATE TABLE reviews (
    request_id      text NOT NULL,
    position        integer NOT NULL,
    seq             bigint NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('review', 'post_review')),
    reviewer        text NOT NULL,
    reviewer_groups text[] NOT NULL,
    stage           integer NOT NULL,
    stage_name      text NOT NULL,
    decision        text NOT NULL,
    comment         text NOT NULL,
    at              timestamptz NOT NULL,
    PRIMARY KEY (request_id, position)
);
CREATE INDEX reviews_reviewer ON reviews (reviewer);

-- Access granted, active and past, with the states observed on the target.
CREATE TABLE grants (
    request_id        text PRIMARY KEY,
    entitlement       text NOT NULL,
    requester         text NOT NULL,
    subject_kind      text NOT NULL,
    subject_id        text NOT NULL,
    connector         text NOT NULL,
    target_ref        text NOT NULL,
    observed          jsonb NOT NULL,
    granted_at        timestamptz NOT NULL,
    expires_at        timestamptz NOT NULL,
    revoked_at        timestamptz,
    revocation_reason text NOT NULL,
    observed_after    jsonb,
    last_seq          bigint NOT NULL,
    view              jsonb NOT NULL,
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX grants_entitlement ON grants (entitlement, granted_at);
CREATE INDEX grants_active ON grants (request_id) WHERE revoked_at IS NULL;

-- One row per verified event, by stream sequence.
CREATE TABLE audit_index (
    seq        bigint PRIMARY KEY,
    request_id text NOT NULL,
    event_id   text NOT NULL,
    type       text NOT NULL,
    actor      text NOT NULL,
    source     text NOT NULL,
    time       timestamptz NOT NULL,   -- when the emitter says it happened
    stored_at  timestamptz NOT NULL    -- when the broker stored it
);
CREATE INDEX audit_index_request ON audit_index (request_id, seq);
CREATE INDEX audit_index_actor ON audit_index (actor, seq);

-- Stored events the projection could not apply: the request's history fails verification or the
-- lifecycle at or before them (kind, position and problem_seq say where first), or they are not
-- request events at all. The checkpoint moves past them; nothing is skipped silently.
CREATE TABLE faults (
    seq         bigint PRIMARY KEY,
    request_id  text NOT NULL,
    kind        text NOT NULL,
    position    integer NOT NULL,
    problem_seq bigint NOT NULL,
    event_id    text NOT NULL,
    detail      text NOT NULL
);
CREATE INDEX faults_request ON faults (request_id);

-- How far into the stream the projection has applied, written in the same transaction as the rows.
CREATE TABLE checkpoint (
    stream     text PRIMARY KEY,
    last_seq   bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO checkpoint (stream, last_seq) VALUES ('GRANTLINE_EVENTS', 0);
