package throttle

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// clock is a test's time, moved by hand.
type clock struct{ t time.Time }

func (c *clock) now() time.Time       { return c.t }
func (c *clock) wait(d time.Duration) { c.t = c.t.Add(d) }
func newClock() *clock                { return &clock{t: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)} }
func limited(err error) (*LimitedError, bool) {
	var le *LimitedError
	return le, errors.As(err, &le)
}

// TestLimit is the specification of one identity's allowance, as a sequence of submissions: each
// row waits, submits as who, and is accepted or told how long to wait.
func TestLimit(t *testing.T) {
	c := newClock()
	l := New(Limit{Burst: 3, Every: 10 * time.Second}, c.now)
	steps := []struct {
		name  string
		wait  time.Duration
		who   string
		after time.Duration // 0: accepted
	}{
		{"alice's first submission", 0, "requester:alice", 0},
		{"her second at once", 0, "requester:alice", 0},
		{"her third at once: the burst is three", 0, "requester:alice", 0},
		{"her fourth at once is refused until one token has come back", 0, "requester:alice", 10 * time.Second},
		{"bob is not held back by alice", 0, "requester:bob", 0},
		{"alice again 4s later: 6s to go, the refusal took nothing", 4 * time.Second, "requester:alice", 6 * time.Second},
		{"alice once the token is back", 6 * time.Second, "requester:alice", 0},
		{"and the next one waits the full interval", 0, "requester:alice", 10 * time.Second},
		{"after a long quiet, the whole burst is back", time.Hour, "requester:alice", 0},
		{"two", 0, "requester:alice", 0},
		{"three", 0, "requester:alice", 0},
		{"but no more", 0, "requester:alice", 10 * time.Second},
	}
	for _, s := range steps {
		c.wait(s.wait)
		err := l.Allow(s.who)
		le, isLimited := limited(err)
		switch {
		case s.after == 0 && err != nil:
			t.Fatalf("%s: refused: %v", s.name, err)
		case s.after != 0 && !isLimited:
			t.Fatalf("%s: err = %v, want a *LimitedError", s.name, err)
		case s.after != 0 && (le.After != s.after || le.Who != s.who || !errors.Is(err, ErrLimited)):
			t.Fatalf("%s: %+v (%v), want %s to wait %s", s.name, le, err, s.who, s.after)
		}
	}
}

func TestZeroBurstMeansNoLimit(t *testing.T) {
	l := New(Limit{}, newClock().now)
	for i := range 10000 {
		if err := l.Allow("integration:bench"); err != nil {
			t.Fatalf("submission %d refused without a limit: %v", i, err)
		}
	}
}

// TestManyIdentitiesDoNotGrowMemory: a client inventing identities (or a large population) leaves
// buckets behind; full ones are dropped, so what is kept is what is still being limited.
func TestManyIdentitiesDoNotGrowMemory(t *testing.T) {
	c := newClock()
	l := New(Limit{Burst: 2, Every: time.Second}, c.now)
	for i := range 100_000 {
		if err := l.Allow(fmt.Sprintf("requester:u%d", i)); err != nil {
			t.Fatal(err)
		}
		if i%1000 == 999 {
			c.wait(2 * time.Second) // the earlier ones' buckets are full again
		}
	}
	if n := len(l.buckets); n > 2*sweepAt {
		t.Fatalf("%d buckets kept for 100000 one-off identities, want at most %d", n, 2*sweepAt)
	}
}
