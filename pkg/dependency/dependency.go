// Package dependency recognises a failure of something a service depends on, PostgreSQL or the NATS
// broker, as that dependency being unavailable, so that every HTTP edge answers it alike (pkg/httpjson:
// 503, Retry-After, a problem naming it) instead of as an internal error. What does not need the
// dependency keeps working; only the calls that do are refused, and they can be retried.
package dependency

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The dependencies, as problems name them.
const (
	Database = "database"
	Broker   = "NATS"
)

// ErrUnavailable is what every *UnavailableError is (errors.Is).
var ErrUnavailable = errors.New("a dependency is unavailable")

// UnavailableError says which dependency did not answer, and how.
type UnavailableError struct {
	Dependency string
	Err        error
}

func (e *UnavailableError) Error() string {
	return "the " + e.Dependency + " is unavailable: " + e.Err.Error()
}

func (e *UnavailableError) Unwrap() error { return e.Err }

// RetryAfter is when to try again: a server restarting or failing over takes seconds, so longer than a
// busy request's one second (pkg/httpjson answers it in Retry-After).
func (e *UnavailableError) RetryAfter() time.Duration { return 5 * time.Second }

// Is makes every UnavailableError ErrUnavailable.
func (e *UnavailableError) Is(target error) bool { return target == ErrUnavailable }

// Classify returns err as an *UnavailableError when it says PostgreSQL or NATS did not answer (could
// not connect, the connection was lost, the server is shutting down or starting, no server or no
// stream leader responded), and err itself otherwise.
func Classify(err error) error {
	var u *UnavailableError
	if err == nil || errors.As(err, &u) {
		return err
	}
	if name := unavailable(err); name != "" {
		return &UnavailableError{Dependency: name, Err: err}
	}
	return err
}

// OfBroker classifies err, the failure of work under ctx that needs no dependency but the broker
// (NATS): what Classify recognises and, besides, a deadline that passed while ctx is still live. That
// can only be a JetStream call's own timeout (nats.go gives each one 5 s by default), and it is how a
// stream without a quorum answers: not at all, not even "no responders". A deadline of ctx itself is
// the caller's, left as it is.
func OfBroker(ctx context.Context, err error) error {
	if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, ErrUnavailable) {
		return &UnavailableError{Dependency: Broker, Err: err}
	}
	return Classify(err)
}

func unavailable(err error) string {
	var connect *pgconn.ConnectError
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &connect):
		return Database
	case errors.As(err, &pgErr):
		// Class 08 is connection exceptions; 57P01-57P03 a server shutting down, crashed, or not yet
		// accepting connections.
		if strings.HasPrefix(pgErr.Code, "08") || pgErr.Code == "57P01" || pgErr.Code == "57P02" || pgErr.Code == "57P03" {
			return Database
		}
		return ""
	case pgconn.SafeToRetry(err):
		// pgx could not send the query (a connection found broken before use).
		return Database
	case errors.Is(err, nats.ErrNoServers), errors.Is(err, nats.ErrConnectionClosed), errors.Is(err, nats.ErrDisconnected),
		errors.Is(err, nats.ErrConnectionReconnecting), errors.Is(err, nats.ErrNoResponders), errors.Is(err, nats.ErrTimeout),
		errors.Is(err, jetstream.ErrNoStreamResponse), errors.Is(err, jetstream.ErrJetStreamNotEnabled):
		return Broker
	}
	return ""
}
