package connector

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/grantline/grantline/pkg/events"
)

// ClassCircuitOpen is the class of the error a Breaker answers while it shields its target.
const ClassCircuitOpen = "circuit_open"

// Breaker defaults.
const (
	DefaultBreakerFailures = 5
	// DefaultBreakerOpen is short on purpose: an open breaker is probed by one call once it has passed,
	// and the work waiting on the target goes as soon as a probe succeeds, so this bounds how long
	// work waits after the target is back.
	DefaultBreakerOpen = 2 * time.Second
)

// probeWait is how soon a call refused because another call is probing comes back.
const probeWait = 100 * time.Millisecond

// Breaker shields one target with a circuit breaker (sony/gobreaker). After Failures consecutive
// transient failures it opens: calls are refused without reaching the target, with an error of class
// ClassCircuitOpen whose RetryAfter is the time left until it half-opens, so the callers come back
// exactly then, not after their own backoff. Half-open, one call probes the target; when it succeeds
// the breaker closes and every waiting caller goes through. A refusal (a permanent error) is the target
// answering and counts as a success; the caller's own cancellation counts as nothing.
type Breaker struct {
	cb   *gobreaker.CircuitBreaker[events.Observed]
	open time.Duration

	mu       sync.Mutex
	openedAt time.Time
}

// NewBreaker returns a closed breaker named name (for logs) that opens after failures consecutive
// transient failures for open; zero values take the defaults. onChange, if set, hears every transition.
func NewBreaker(name string, failures uint32, open time.Duration, onChange func(name string, from, to gobreaker.State)) *Breaker {
	if failures == 0 {
		failures = DefaultBreakerFailures
	}
	if open <= 0 {
		open = DefaultBreakerOpen
	}
	b := &Breaker{open: open}
	b.cb = gobreaker.NewCircuitBreaker[events.Observed](gobreaker.Settings{
		Name: name, Timeout: open,
		ReadyToTrip:  func(n gobreaker.Counts) bool { return n.ConsecutiveFailures >= failures },
		IsSuccessful: func(err error) bool { return err == nil || IsPermanent(err) },
		IsExcluded:   func(err error) bool { return errors.Is(err, context.Canceled) },
		OnStateChange: func(name string, from, to gobreaker.State) {
			if to == gobreaker.StateOpen {
				b.mu.Lock()
				b.openedAt = time.Now()
				b.mu.Unlock()
			}
			if onChange != nil {
				onChange(name, from, to)
			}
		},
	})
	return b
}

// Do runs call unless the breaker is open (or half-open with a probe in flight), and records its
// outcome.
func (b *Breaker) Do(call func() (events.Observed, error)) (events.Observed, error) {
	obs, err := b.cb.Execute(call)
	switch {
	case err == nil || IsPermanent(err):
		return obs, err
	case errors.Is(err, gobreaker.ErrOpenState):
		return obs, &Error{Class: ClassCircuitOpen, RetryAfter: b.untilProbe(), Err: fmt.Errorf("target %s: %w", b.cb.Name(), err)}
	case errors.Is(err, gobreaker.ErrTooManyRequests):
		return obs, &Error{Class: ClassCircuitOpen, RetryAfter: probeWait, Err: fmt.Errorf("target %s: %w", b.cb.Name(), err)}
	case b.cb.State() == gobreaker.StateOpen:
		// This failure opened the breaker (or was a failed probe): its caller comes back for the next
		// probe too, not after a backoff of its own.
		e := &Error{Class: ClassOf(err), Err: err}
		var ce *Error
		if errors.As(err, &ce) {
			e.Err = ce.Err
		}
		e.RetryAfter = b.untilProbe()
		return obs, e
	}
	return obs, err
}

// untilProbe is how long until the open breaker lets a probe through.
func (b *Breaker) untilProbe() time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	return max(time.Until(b.openedAt.Add(b.open)), probeWait)
}

// State is the breaker's state.
func (b *Breaker) State() gobreaker.State { return b.cb.State() }

// Shield returns c with every grant, revocation (a batch of them counting as one call) and inspection
// going through b. The result still
// issues credentials, names target references and lists its target (unshielded: the reconciler's own
// pace) as c does.
func Shield(c Connector, b *Breaker) Connector {
	s := shielded{wrapper{c}, b}
	if inv, ok := c.(Inventory); ok {
		return shieldedInventory{s, inv}
	}
	return s
}

type shieldedInventory struct {
	shielded
	Inventory
}

type shielded struct {
	wrapper
	b *Breaker
}

func (s shielded) Grant(ctx context.Context, g Grant) (events.Observed, error) {
	return s.b.Do(func() (events.Observed, error) { return s.inner.Grant(ctx, g) })
}

func (s shielded) Revoke(ctx context.Context, g Grant) (events.Observed, error) {
	return s.b.Do(func() (events.Observed, error) { return s.inner.Revoke(ctx, g) })
}

// RevokeBatch counts as one call to the breaker, failed when the target failed every grant: a breaker
// that is open refuses the whole batch, each grant with the time the next probe is due.
func (s shielded) RevokeBatch(ctx context.Context, gs []Grant) []Revocation {
	var out []Revocation
	_, err := s.b.Do(func() (events.Observed, error) {
		out = RevokeAll(ctx, s.inner, gs)
		return events.Observed{}, batchFailure(out)
	})
	if err != nil && batchFailure(out) != nil || out == nil {
		// Refused, or every grant failed: each carries the breaker's word on when to come back.
		out = make([]Revocation, len(gs))
		for i := range out {
			out[i].Err = err
		}
	}
	return out
}

func (s shielded) Inspect(ctx context.Context, g Grant) (events.Observed, error) {
	return s.b.Do(func() (events.Observed, error) { return s.inner.Inspect(ctx, g) })
}
