package consumer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Action is what the runner does with a delivered message once its handler returned.
type Action int

// Actions, from the table in Dispose.
const (
	// Ack: done, never deliver again.
	Ack Action = iota
	// Retry: negative-acknowledge with a delay; the server delivers it again.
	Retry
	// DeadLetter: copy it to GRANTLINE_DLQ with the reason, then terminate it.
	DeadLetter
	// Hold: keep the message (telling the server it is in progress) and run the handler on it again
	// after the delay. What it needs is down; the next messages would fail the same way, and handing
	// it back would count a delivery towards the dead-letter limit for an outage that is not its fault.
	Hold
)

func (a Action) String() string {
	return [...]string{"ack", "retry", "dead-letter", "hold"}[a]
}

// Disposition is the decision for one delivery.
type Disposition struct {
	Action Action
	Delay  time.Duration
	Reason string
}

type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Permanent marks err as one no retry can fix (a malformed or forged event): the message goes to the
// dead-letter stream at once.
func Permanent(err error) error { return permanentError{err} }

type retryAfterError struct {
	err   error
	delay time.Duration
}

func (e retryAfterError) Error() string { return e.err.Error() }
func (e retryAfterError) Unwrap() error { return e.err }

// RetryAfter asks for redelivery after d rather than after the default backoff (a target system that
// said when to come back).
func RetryAfter(err error, d time.Duration) error { return retryAfterError{err, d} }

type unavailableError struct{ err error }

func (e unavailableError) Error() string { return e.err.Error() }
func (e unavailableError) Unwrap() error { return e.err }

// Unavailable marks err as a dependency being down (the database, the broker, the network), not
// something wrong with the message: the message is held and tried again, in order, for as long as it
// takes, and never dead-lettered for it. A projection returns every failure but a permanent one so.
func Unavailable(err error) error { return unavailableError{err} }

// IsUnavailable reports whether err was marked by Unavailable, or is the broker not answering (a
// request that timed out or found no responder, as during a quorum loss, or a closed connection):
// a dependency down, whichever handler met it.
func IsUnavailable(err error) bool {
	var u unavailableError
	return errors.As(err, &u) || errors.Is(err, nats.ErrTimeout) || errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, jetstream.ErrNoStreamResponse)
}

// Dispose is the one table mapping a handler's result to an action. attempt counts the handler's runs
// on this message (1 for the first); after maxDeliveries failed attempts the message is dead-lettered,
// never dropped — unless what failed was a dependency (Unavailable), which no number of attempts
// makes the message's fault.
func Dispose(err error, attempt, maxDeliveries int, backoff func(attempt int) time.Duration) Disposition {
	var permanent permanentError
	var retryAfter retryAfterError
	switch {
	case err == nil:
		return Disposition{Action: Ack}
	case errors.As(err, &permanent):
		return Disposition{Action: DeadLetter, Reason: "permanent: " + err.Error()}
	case errors.Is(err, context.Canceled):
		// Shutting down mid-message: hand it straight to another replica.
		return Disposition{Action: Retry, Delay: 0, Reason: "shutting down"}
	case IsUnavailable(err):
		return Disposition{Action: Hold, Delay: backoff(attempt), Reason: "unavailable: " + err.Error()}
	case attempt >= maxDeliveries:
		return Disposition{Action: DeadLetter, Reason: fmt.Sprintf("failed %d deliveries, last: %v", attempt, err)}
	case errors.As(err, &retryAfter):
		return Disposition{Action: Retry, Delay: retryAfter.delay, Reason: err.Error()}
	default:
		return Disposition{Action: Retry, Delay: backoff(attempt), Reason: err.Error()}
	}
}

// ExponentialBackoff doubles from base with each delivery, capped at ceiling.
func ExponentialBackoff(base, ceiling time.Duration) func(int) time.Duration {
	return func(delivered int) time.Duration {
		d := base
		for i := 1; i < delivered && d < ceiling; i++ {
			d *= 2
		}
		return min(d, ceiling)
	}
}
