// Package deadletter is about the messages the consumers set aside in GRANTLINE_DLQ: which errors no
// retry can help (Permanent), and what the operator does about them afterwards (List, Get, Replay,
// Discard).
//
// The reactions hand the errors Permanent recognises (a stream that fails verification, an event the
// aggregate refuses, a malformed event) to the consumer runner as consumer.Permanent, which sets the
// delivery aside in GRANTLINE_DLQ with the reason and where the original is.
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
