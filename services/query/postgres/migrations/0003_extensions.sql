-- +goose Up
-- Extensions: a request that extends an active grant names it in its view (extends.request_id); the
-- chain of extensions (GET /v1/requests?chain=) walks forward from a grant to the requests extending it.
CREATE INDEX requests_extends ON requests ((view->'extends'->>'request_id')) WHERE view ? 'extends';
