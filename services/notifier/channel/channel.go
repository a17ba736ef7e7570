// Package channel is what every delivery channel (email, slack, webhook) shares: the delivery it is
// handed, the contract it implements, and how it says that a failure is permanent (no retry can fix
// it: an address that does not exist) or transient (retry, possibly not before a given time).
package channel

import (
	"context"
	"errors"
	"time"

	"github.com/grantline/grantline/services/notifier"
)

// Delivery is one message to one address: a single notification, or several for the same person
// coalesced into a digest.
type Delivery struct {
	// ID names the delivery: the notification's key, or for a digest the first one's. Receivers that
	// can deduplicate (a webhook's id, an e-mail's Message-ID) get it.
	ID            string
	Channel       notifier.Channel
	Address       string
	To            notifier.Person
	Notifications []notifier.Notification
}

// Receipt is what a channel hands back about a sent message.
type Receipt struct {
	// Ref locates the message where it can be changed later (Slack: "<channel>/<ts>"); empty otherwise.
	Ref string
}

// Sender sends deliveries through one channel. A failure no retry can fix is a *Error with Permanent
// set; any other error is transient.
type Sender interface {
	Send(ctx context.Context, d Delivery) (Receipt, error)
}

// Error is a channel's failure, saying whether to retry and when.
type Error struct {
	// Permanent: the receiving side refused this message for good (no such address, a malformed
	// message); retrying cannot succeed.
	Permanent bool
	// RetryAfter is the earliest sensible retry, when the receiving side said (a rate limit).
	RetryAfter time.Duration
	Err        error
}

func (e *Error) Error() string { return e.Err.Error() }

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Permanent marks err as a refusal no retry can fix.
func Permanent(err error) error { return &Error{Permanent: true, Err: err} }

// RetryAfter marks err as transient, not to be retried before d.
func RetryAfter(err error, d time.Duration) error { return &Error{RetryAfter: d, Err: err} }

// IsPermanent reports whether err is a permanent refusal.
func IsPermanent(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Permanent
}

// RetryAfterOf returns the earliest retry err asks for, zero if it asks for none.
func RetryAfterOf(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return 0
}
