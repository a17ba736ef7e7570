// Package deadletter says which errors no retry can help (a stream that fails verification, an event
// the aggregate refuses, a malformed event): the reactions hand those to the consumer runner as
// consumer.Permanent, which sets the delivery aside in GRANTLINE_DLQ with the reason.
package deadletter

import (
	"errors"

	"github.com/grantline/grantline/pkg/events"
)

// Permanent reports whether err is one no retry can change: a stream that fails verification, an event
// the aggregate refuses, a malformed event.
func Permanent(err error) bool {
	return errors.Is(err, events.ErrViolation) || errors.Is(err, events.ErrRefused) || errors.Is(err, events.ErrMalformed)
}
