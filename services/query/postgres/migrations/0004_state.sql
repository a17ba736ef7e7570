-- +goose Up
-- What the projection needs to fold a request's next event (query.History.State: the chain's head, the
-- counts, the aggregate's snapshot), kept with the request's row so that the projection holds no
-- request in memory it does not need now. NULL for rows written before this column: those requests are
-- read back from the stream when they next change, and get their state then.
ALTER TABLE requests ADD COLUMN state bytea;
ALTER TABLE findings ADD COLUMN state bytea;
