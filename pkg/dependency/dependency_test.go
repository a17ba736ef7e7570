package dependency_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/nats-io/nats.go"

	"github.com/grantline/grantline/pkg/dependency"
)

// TestClassify: which failures say a dependency is unavailable, as scenarios. A failure the dependency
// answered (a constraint, a missing stream) is no outage.
func TestClassify(t *testing.T) {
	_, connectErr := pgconn.Connect(context.Background(), "postgres://nobody@127.0.0.1:1/none?connect_timeout=1")
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"PostgreSQL refuses connections", fmt.Errorf("list: %w", connectErr), dependency.Database},
		{"PostgreSQL shutting down", &pgconn.PgError{Code: "57P01"}, dependency.Database},
		{"PostgreSQL starting", &pgconn.PgError{Code: "57P03"}, dependency.Database},
		{"a connection exception", &pgconn.PgError{Code: "08006"}, dependency.Database},
		{"a unique violation", &pgconn.PgError{Code: "23505"}, ""},
		{"no NATS server", fmt.Errorf("load: %w", nats.ErrNoServers), dependency.Broker},
		{"no stream leader answered", nats.ErrNoResponders, dependency.Broker},
		{"a NATS request timed out", nats.ErrTimeout, dependency.Broker},
		{"an error of our own", errors.New("invalid request"), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := dependency.Classify(tc.err)
			var u *dependency.UnavailableError
			got := ""
			if errors.As(err, &u) {
				got = u.Dependency
			}
			if got != tc.want || (tc.want != "" && !errors.Is(err, dependency.ErrUnavailable)) || !errors.Is(err, tc.err) {
				t.Fatalf("Classify(%v) = %v, naming %q; want %q", tc.err, err, got, tc.want)
			}
			if again := dependency.Classify(err); again != err {
				t.Fatalf("classifying twice wrapped again: %v", again)
			}
		})
	}
}

// TestOfBroker: for work that needs only the broker, a deadline that passed while the caller's context
// is live is a JetStream call's own timeout, the broker not answering (a stream without a quorum);
// the caller's own deadline is not an outage, and what Classify recognises stays so.
func TestOfBroker(t *testing.T) {
	live := context.Background()
	gone, cancel := context.WithDeadline(context.Background(), time.Unix(0, 0))
	defer cancel()
	for _, tc := range []struct {
		name string
		ctx  context.Context
		err  error
		want string
	}{
		{"a JetStream call timed out", live, fmt.Errorf("claim idempotency key: %w", context.DeadlineExceeded), dependency.Broker},
		{"the caller's own deadline passed", gone, fmt.Errorf("claim idempotency key: %w", context.DeadlineExceeded), ""},
		{"no NATS server", live, nats.ErrNoServers, dependency.Broker},
		{"PostgreSQL refuses connections, classified already", live, &dependency.UnavailableError{Dependency: dependency.Database, Err: errors.New("refused")}, dependency.Database},
		{"an error of our own", live, errors.New("invalid request"), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := dependency.OfBroker(tc.ctx, tc.err)
			var u *dependency.UnavailableError
			got := ""
			if errors.As(err, &u) {
				got = u.Dependency
			}
			if got != tc.want || !errors.Is(err, tc.err) {
				t.Fatalf("OfBroker(%v) = %v, naming %q; want %q", tc.err, err, got, tc.want)
			}
		})
	}
	if dependency.OfBroker(live, nil) != nil {
		t.Fatal("OfBroker(nil) is not nil")
	}
}
