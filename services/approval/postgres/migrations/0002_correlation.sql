-- +goose Up
-- The correlation ID of requests submitted together for several entitlements, so a reviewer sees them
-- side by side ('' for a request submitted alone). Rows written before it keep ''; a rebuild from the
-- stream fills it.
ALTER TABLE inbox_requests ADD COLUMN correlation_id text NOT NULL DEFAULT '';
