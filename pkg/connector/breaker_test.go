package connector_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/grantline/grantline/pkg/connector"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/poll"
)

// flaky is a target that is down until it is not.
type flaky struct {
	down  atomic.Bool
	calls atomic.Int32
}

func (f *flaky) answer() (events.Observed, error) {
	f.calls.Add(1)
	if f.down.Load() {
		return events.Observed{}, connector.Transient("target_unavailable", errors.New("connection refused"))
	}
	return events.Observed{Present: true}, nil
}

// TestBreakerSendsCallersBackForTheProbe: once open, every failing caller (the one that opened it
// included) is told to come back when the breaker lets a probe through, never later than the open
// period; the target is not called meanwhile; a probe that finds it back closes the breaker.
func TestBreakerSendsCallersBackForTheProbe(t *testing.T) {
	const open = 300 * time.Millisecond
	f := &flaky{}
	f.down.Store(true)
	b := connector.NewBreaker("target", 2, open, nil)
	_, err := b.Do(f.answer)
	if connector.RetryAfterOf(err) != 0 || connector.ClassOf(err) != "target_unavailable" {
		t.Fatalf("a first failure: %v, want the target's own error for the caller's backoff", err)
	}
	_, err = b.Do(f.answer)
	if after := connector.RetryAfterOf(err); after <= 0 || after > open || connector.ClassOf(err) != "target_unavailable" {
		t.Fatalf("the failure that opened the breaker: %v (retry after %s), want back within %s", err, after, open)
	}
	_, err = b.Do(f.answer)
	if after := connector.RetryAfterOf(err); connector.ClassOf(err) != connector.ClassCircuitOpen || after <= 0 || after > open || f.calls.Load() != 2 {
		t.Fatalf("while open: %v after %d calls, want %s without calling the target", err, f.calls.Load(), connector.ClassCircuitOpen)
	}
	f.down.Store(false)
	poll.Until(t, 5*time.Second, "the breaker to half-open", func() bool { return b.State() == gobreaker.StateHalfOpen })
	if obs, err := b.Do(f.answer); err != nil || !obs.Present || b.State() != gobreaker.StateClosed {
		t.Fatalf("the probe: %+v %v, breaker %s; want it to close the breaker", obs, err, b.State())
	}
}

// TestShieldKeepsWhatTheConnectorIs: a shielded connector still issues credentials and names its
// target references as the connector does.
func TestShieldKeepsWhatTheConnectorIs(t *testing.T) {
	inner := issuing{}
	c := connector.Shield(inner, connector.NewBreaker("t", 0, 0, nil))
	g := connector.Grant{ID: "r1"}
	if !connector.IssuesCredential(c, g) || connector.TargetRef(c, g) != "login r1" {
		t.Fatalf("issues %v, ref %q", connector.IssuesCredential(c, g), connector.TargetRef(c, g))
	}
	if obs, err := c.Grant(context.Background(), g); err != nil || !obs.Present {
		t.Fatalf("grant through the shield: %+v %v", obs, err)
	}
	if _, ok := c.(connector.Inventory); ok {
		t.Fatal("a shield lists a target its connector cannot list")
	}
	if _, ok := connector.Shield(listing{}, connector.NewBreaker("t", 0, 0, nil)).(connector.Inventory); !ok {
		t.Fatal("a shield hides its connector's inventory")
	}
}

type listing struct{ issuing }

func (listing) Holdings(context.Context) ([]connector.Holding, error) { return nil, nil }

type issuing struct{}

func (issuing) Grant(context.Context, connector.Grant) (events.Observed, error) {
	return events.Observed{Present: true}, nil
}
func (issuing) Revoke(context.Context, connector.Grant) (events.Observed, error) {
	return events.Observed{}, nil
}
func (issuing) Inspect(context.Context, connector.Grant) (events.Observed, error) {
	return events.Observed{}, nil
}
func (issuing) IssuesCredential(connector.Grant) bool { return true }
func (issuing) Username(g connector.Grant) string     { return "login " + g.ID }
func (issuing) TargetRef(g connector.Grant) string    { return "login " + g.ID }

// perGrant is a target whose revocations fail for the grants it names, and for every grant while down.
type perGrant struct {
	down    atomic.Bool
	failing map[string]bool
	calls   atomic.Int32
}

func (p *perGrant) Grant(context.Context, connector.Grant) (events.Observed, error) {
	return events.Observed{}, nil
}

func (p *perGrant) Revoke(_ context.Context, g connector.Grant) (events.Observed, error) {
	p.calls.Add(1)
	if p.down.Load() || p.failing[g.ID] {
		return events.Observed{}, connector.Transient("target_unavailable", errors.New("refused "+g.ID))
	}
	return events.Observed{Present: false}, nil
}

func (p *perGrant) Inspect(context.Context, connector.Grant) (events.Observed, error) {
	return events.Observed{}, nil
}

// TestShieldedBatchIsOneCall: behind a breaker, a batch in which one grant fails is a target that
// answers (the breaker stays closed, each grant keeps its own outcome); batches in which every grant
// fails count as failed calls and open it, after which a batch is refused whole without reaching the
// target, each grant told when the probe is due.
func TestShieldedBatchIsOneCall(t *testing.T) {
	target := &perGrant{failing: map[string]bool{"b": true}}
	c := connector.Shield(target, connector.NewBreaker("target", 2, time.Minute, nil))
	gs := []connector.Grant{{ID: "a"}, {ID: "b"}, {ID: "c"}}
	for range 3 {
		out := connector.RevokeAll(context.Background(), c, gs)
		if out[0].Err != nil || out[1].Err == nil || out[2].Err != nil {
			t.Fatalf("a batch with one failing grant: %+v", out)
		}
	}
	target.down.Store(true)
	for range 2 {
		connector.RevokeAll(context.Background(), c, gs)
	}
	calls := target.calls.Load()
	out := connector.RevokeAll(context.Background(), c, gs)
	for i, r := range out {
		if connector.ClassOf(r.Err) != connector.ClassCircuitOpen || connector.RetryAfterOf(r.Err) <= 0 {
			t.Fatalf("grant %d while open: %v, want %s with a time to come back", i, r.Err, connector.ClassCircuitOpen)
		}
	}
	if target.calls.Load() != calls {
		t.Fatal("the open breaker let a batch reach the target")
	}
}
