package queryd_test

import (
	"context"
	"testing"
	"time"

	"github.com/grantline/grantline/pkg/pgtest"
	"github.com/grantline/grantline/pkg/poll"
)

// TestProjectionNotReadyWhileItsDatabaseIsDown: with the read side's database gone, the projection
// stops and says so (its readiness check fails); once the database is back it catches up with what
// was written meanwhile and is ready again.
func TestProjectionNotReadyWhileItsDatabaseIsDown(t *testing.T) {
	e := newEnv(t)
	e.Make().Submit(t, "alice", "analytics-read", false)
	e.caughtUp(t)
	ready := func() error { return e.deps.ProjectionStall.Check(context.Background()) }
	if err := ready(); err != nil {
		t.Fatalf("not ready with everything up: %v", err)
	}

	end := pgtest.Outage(t, e.pool.Config().ConnString())
	e.Make().Submit(t, "bob", "analytics-read", false)
	poll.Until(t, 30*time.Second, "the projection to report the outage", func() bool { return ready() != nil })
	t.Logf("during the outage: %v", ready())
	end()

	e.caughtUp(t)
	poll.Until(t, 30*time.Second, "the projection to be ready again", func() bool { return ready() == nil })
}
