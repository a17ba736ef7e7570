package httpjson_test

import (
	"bytes"
	"context"
	"encoding/json/v2"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/nats-io/nats.go"

	"github.com/grantline/grantline/pkg/auth"
	"github.com/grantline/grantline/pkg/dependency"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/eventstore"
	"github.com/grantline/grantline/pkg/httpjson"
)

// A service's own errors, as a service's table would name them.
var (
	errNoCredential = errors.New("no credential")
	errSelfApproval = errors.New("separation of duties")
	errDomainAbsent = errors.New("the domain's own not-found")
	errInvalid      = errors.New("invalid request")
)

// limited says when to come back, as intake's rate-limit refusal does.
type limited struct{ after time.Duration }

func (e limited) Error() string             { return "too many submissions" }
func (e limited) Unwrap() error             { return errLimited }
func (e limited) RetryAfter() time.Duration { return e.after }

var errLimited = errors.New("too many")

// invalid carries field errors, as intake's *InvalidError does.
type invalid struct{ fields []httpjson.FieldError }

func (e invalid) Error() string                      { return "invalid request" }
func (e invalid) Unwrap() error                      { return errInvalid }
func (e invalid) FieldErrors() []httpjson.FieldError { return e.fields }

var table = httpjson.NewTable(
	httpjson.Row{Status: http.StatusNotFound, Slug: "no-credential", Title: "This request has no credential", Errs: []error{errNoCredential}},
	httpjson.Row{Status: http.StatusForbidden, Slug: "separation-of-duties", Title: "Separation of duties", Errs: []error{errSelfApproval},
		Warning: "separation of duties", Attrs: func(error) []any { return []any{"reviewer", "alice"} }},
	httpjson.NotFound.For(errDomainAbsent),
	httpjson.Row{Status: http.StatusUnprocessableEntity, Slug: "invalid-request", Title: "The request is not valid", Errs: []error{errInvalid}},
	httpjson.Row{Status: http.StatusTooManyRequests, Slug: "too-many-submissions", Title: "Too many submissions", Errs: []error{errLimited}},
)

// TestRefuse is the table every API answers with: each row is an error a handler returns, the answer
// on the wire and how the refusal is logged.
func TestRefuse(t *testing.T) {
	cases := []struct {
		name    string
		err     error
		status  int
		slug    string
		detail  bool // the error's text is the problem's detail
		headers map[string]string
		level   string
		fields  []httpjson.FieldError
		// dependency is the one the problem names as unavailable; its detail says so before the error.
		dependency string
	}{
		{name: "a body over the limit", err: fmt.Errorf("%w: over 10 bytes", httpjson.ErrTooLarge), status: 413, slug: "body-too-large", detail: true, level: "INFO"},
		{name: "a malformed body", err: fmt.Errorf("%w: trailing data", httpjson.ErrMalformed), status: 400, slug: "malformed-body", detail: true, level: "INFO"},
		{name: "no token", err: fmt.Errorf("verify: %w", auth.ErrUnauthenticated), status: 401, slug: "unauthenticated", detail: true,
			headers: map[string]string{"WWW-Authenticate": `Bearer realm="grantline"`}, level: "INFO"},
		{name: "a caller the handler refuses", err: fmt.Errorf("%w: only the requester", httpjson.ErrForbidden), status: 403, slug: "forbidden", detail: true, level: "INFO"},
		{name: "an unknown request", err: httpjson.ErrNotFound, status: 404, slug: "not-found", detail: true, level: "INFO"},
		{name: "the domain's own not-found, answered by the shared row", err: errDomainAbsent, status: 404, slug: "not-found", detail: true, level: "INFO"},
		{name: "the aggregate refuses the event", err: &events.RefusedError{Type: events.TypeWithdrawn, Status: events.StatusGranted, Reason: "too late"},
			status: 409, slug: "state-conflict", detail: true, level: "INFO"},
		{name: "the store kept conflicting", err: fmt.Errorf("append: %w", eventstore.ErrConflict), status: 503, slug: "busy", detail: true,
			headers: map[string]string{"Retry-After": "1"}, level: "ERROR"},
		{name: "a replica behind", err: eventstore.ErrStale, status: 503, slug: "busy", detail: true, headers: map[string]string{"Retry-After": "1"}, level: "ERROR"},
		{name: "a call cancelled on the way", err: fmt.Errorf("load: %w", context.Canceled), status: 503, slug: "busy", detail: true, level: "ERROR"},
		{name: "over a rate limit: Retry-After is the refusal's wait, rounded up to whole seconds", err: limited{after: 2100 * time.Millisecond},
			status: 429, slug: "too-many-submissions", detail: true, headers: map[string]string{"Retry-After": "3"}, level: "INFO"},
		{name: "over a rate limit by less than a second: Retry-After is never 0", err: limited{after: time.Millisecond},
			status: 429, slug: "too-many-submissions", detail: true, headers: map[string]string{"Retry-After": "1"}, level: "INFO"},
		{name: "a service's own row", err: errNoCredential, status: 404, slug: "no-credential", detail: true, level: "INFO"},
		{name: "a refusal an operator should see", err: errSelfApproval, status: 403, slug: "separation-of-duties", detail: true, level: "WARN"},
		{name: "field errors travel with the problem", err: invalid{fields: []httpjson.FieldError{{Field: "duration", Message: "over 8h"}}},
			status: 422, slug: "invalid-request", detail: true, level: "INFO", fields: []httpjson.FieldError{{Field: "duration", Message: "over 8h"}}},
		{name: "PostgreSQL shutting down", err: fmt.Errorf("list requests: %w", &pgconn.PgError{Severity: "FATAL", Code: "57P01",
			Message: "terminating connection due to administrator command"}), status: 503, slug: "unavailable", detail: true,
			headers: map[string]string{"Retry-After": "5"}, level: "ERROR", dependency: dependency.Database},
		{name: "no NATS server", err: fmt.Errorf("load request r1: %w", nats.ErrNoServers), status: 503, slug: "unavailable", detail: true,
			headers: map[string]string{"Retry-After": "5"}, level: "ERROR", dependency: dependency.Broker},
		{name: "a constraint PostgreSQL enforces is no outage", err: &pgconn.PgError{Code: "23505", Message: "duplicate key"}, status: 500,
			slug: "internal", level: "ERROR"},
		{name: "anything else is internal, its text kept out of the answer", err: errors.New("dial tcp: secret-host:5432"), status: 500, slug: "internal", level: "ERROR"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			log := slog.New(slog.NewJSONHandler(&logs, nil))
			rec := httptest.NewRecorder()
			table.Refuse(rec, httptest.NewRequest(http.MethodPost, "/v1/requests/r1/reviews", nil), log, "review", tc.err)

			if rec.Code != tc.status || rec.Header().Get("Content-Type") != "application/problem+json" {
				t.Fatalf("%d %q, want %d application/problem+json", rec.Code, rec.Header().Get("Content-Type"), tc.status)
			}
			for k, v := range tc.headers {
				if got := rec.Header().Get(k); got != v {
					t.Errorf("%s: %q, want %q", k, got, v)
				}
			}
			var got httpjson.Problem
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
				t.Fatalf("not a problem document: %s", rec.Body)
			}
			want := httpjson.Problem{Type: httpjson.ProblemTypeBase + tc.slug, Title: table.Lookup(tc.err).Title, Status: tc.status,
				Instance: "/v1/requests/r1/reviews", Errors: tc.fields, Dependency: tc.dependency}
			said := tc.err.Error()
			if tc.dependency != "" {
				said = "the " + tc.dependency + " is unavailable: " + said
			}
			if tc.detail {
				want.Detail = said
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("problem (-want +got):\n%s", diff)
			}

			var line map[string]any
			if err := json.Unmarshal(logs.Bytes(), &line); err != nil {
				t.Fatalf("not one log line: %q", logs.String())
			}
			if line["level"] != tc.level || line["error"] != said {
				t.Errorf("logged %v, want level %s with the error", line, tc.level)
			}
			if tc.status < 500 && line["problem"] != tc.slug {
				t.Errorf("logged %v without the problem %s", line, tc.slug)
			}
			if tc.level == "WARN" && (line["reviewer"] != "alice" || line["msg"] != "review refused: separation of duties") {
				t.Errorf("the warning %v does not say who was refused and why", line)
			}
		})
	}
}

// A service's row for an error the shared rows also name wins: the table reads its own rows first.
func TestOwnRowsComeFirst(t *testing.T) {
	own := httpjson.Row{Status: http.StatusGone, Slug: "gone", Title: "Gone", Errs: []error{httpjson.ErrNotFound}}
	if got := httpjson.NewTable(own).Lookup(fmt.Errorf("load: %w", httpjson.ErrNotFound)); got.Slug != "gone" {
		t.Fatalf("the shared row answered first: %s", got.Slug)
	}
	if got := httpjson.NewTable().Lookup(httpjson.ErrNotFound); got.Slug != "not-found" {
		t.Fatalf("without a row of its own a service answers %s", got.Slug)
	}
}
