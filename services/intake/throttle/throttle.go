// Package throttle limits how fast one identity (a requester over HTTP, an integration over NATS)
// may submit requests, so that one broken or hostile client cannot flood the evidence stream, the
// policy engine and the approvers' inboxes. Each identity has a token bucket (golang.org/x/time/rate):
// Burst submissions at once, then one more every Every.
//
// The buckets live in the memory of one intake replica: with N replicas behind a load balancer an
// identity may submit up to N times the limit, and a restart refills every bucket. That is enough to
// stop a flood, which is the purpose; it is not a quota to bill by.
package throttle

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// ErrLimited is wrapped by every *LimitedError.
var ErrLimited = errors.New("too many submissions")

// LimitedError refuses a submission over its identity's limit and says when the next one will be
// accepted.
type LimitedError struct {
	Who   string        // the identity, as the limiter was asked about it ("requester:alice", "integration:jira")
	After time.Duration // until a submission will be accepted again
	Limit Limit
}

func (e *LimitedError) Error() string {
	return fmt.Sprintf("too many submissions by %s: at most %d at once, then one every %s; retry after %s",
		e.Who, e.Limit.Burst, e.Limit.Every, e.After.Round(time.Millisecond))
}

// Unwrap makes errors.Is(err, ErrLimited) true.
func (e *LimitedError) Unwrap() error { return ErrLimited }

// RetryAfter is how long the caller should wait, for an HTTP Retry-After header.
func (e *LimitedError) RetryAfter() time.Duration { return e.After }

// Limit is one identity's allowance. A zero Burst means no limit.
type Limit struct {
	Burst int
	Every time.Duration
}

// sweepAt is the number of buckets above which idle (full) buckets are dropped, so random or many
// identities cannot grow memory without bound: a full bucket is the same as none.
const sweepAt = 4096

// Limiter holds a token bucket per identity. It is safe for concurrent use.
type Limiter struct {
	limit Limit
	now   func() time.Time

	mu        sync.Mutex
	buckets   map[string]*rate.Limiter
	nextSweep int
}

// New returns a Limiter allowing each identity limit; now is the clock (time.Now in production).
func New(limit Limit, now func() time.Time) *Limiter {
	return &Limiter{limit: limit, now: now, buckets: map[string]*rate.Limiter{}, nextSweep: sweepAt}
}

// Allow takes one submission from who's bucket, or returns a *LimitedError saying when to retry
// without taking anything, so a client that keeps retrying too early is not pushed further back.
// A nil Limiter limits nothing.
func (l *Limiter) Allow(who string) error {
	if l == nil || l.limit.Burst <= 0 {
		return nil
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[who]
	if !ok {
		l.sweep(now)
		b = rate.NewLimiter(rate.Every(l.limit.Every), l.limit.Burst)
		l.buckets[who] = b
	}
	r := b.ReserveN(now, 1)
	if wait := r.DelayFrom(now); wait > 0 {
		r.CancelAt(now)
		// Rounded up to the millisecond, so that retrying exactly After later is accepted (the
		// bucket's float arithmetic would say 5.999999s for 6s).
		return &LimitedError{Who: who, After: (wait + time.Millisecond - 1).Truncate(time.Millisecond), Limit: l.limit}
	}
	return nil
}

// sweep drops full buckets once there are more than nextSweep, then waits for twice as many as
// remain, so sweeping costs amortised constant time per new identity.
func (l *Limiter) sweep(now time.Time) {
	if len(l.buckets) < l.nextSweep {
		return
	}
	for who, b := range l.buckets {
		if b.TokensAt(now) >= float64(l.limit.Burst) {
			delete(l.buckets, who)
		}
	}
	l.nextSweep = max(sweepAt, 2*len(l.buckets))
}
