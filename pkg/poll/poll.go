// Package poll waits in tests for a condition to hold, instead of sleeping for a guessed duration.
package poll

import (
	"testing"
	"time"
)

// Interval is how often Until checks the condition.
const Interval = 20 * time.Millisecond

// Until checks cond every Interval until it holds, and fails the test naming what it waited for if
// timeout passes first.
func Until(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(Interval)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		case <-tick.C:
		}
	}
}
