package connector_test

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/grantline/grantline/pkg/catalogue"
	"github.com/grantline/grantline/pkg/connector"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/otlptest"
)

// target is a connector whose target answers from a map of what exists, and is down when down is set.
type target struct {
	present map[string]bool
	down    bool
}

func (c *target) Grant(_ context.Context, g connector.Grant) (events.Observed, error) {
	if c.down {
		return events.Observed{}, connector.Transient("target_unavailable", errors.New("connection refused"))
	}
	c.present[g.ID] = true
	return events.Observed{Present: true}, nil
}

func (c *target) Revoke(_ context.Context, g connector.Grant) (events.Observed, error) {
	delete(c.present, g.ID)
	return events.Observed{}, nil
}

func (c *target) Inspect(_ context.Context, g connector.Grant) (events.Observed, error) {
	return events.Observed{Present: c.present[g.ID]}, nil
}

// TestTracedKeepsWhatTheConnectorIs: a traced connector (shielded or not) answers what does not reach
// the target as the connector does, and is an Inventory only when that one is.
func TestTracedKeepsWhatTheConnectorIs(t *testing.T) {
	g := connector.Grant{ID: "r1", Entitlement: catalogue.Entitlement{System: "payments-db", Resource: "read"}}
	c := connector.Traced("t", issuing{})
	if !connector.IssuesCredential(c, g) || c.(connector.Issuer).Username(g) != "login r1" || connector.TargetRef(c, g) != "login r1" {
		t.Errorf("issues %v, ref %q", connector.IssuesCredential(c, g), connector.TargetRef(c, g))
	}
	if _, ok := c.(connector.Inventory); ok {
		t.Error("a traced connector lists a target its connector cannot list")
	}
	plain := connector.Traced("t", &target{})
	if connector.IssuesCredential(plain, g) || connector.TargetRef(plain, g) != "payments-db read" {
		t.Errorf("a connector issuing nothing: issues %v, ref %q", connector.IssuesCredential(plain, g), connector.TargetRef(plain, g))
	}
	if _, ok := connector.Traced("t", connector.Shield(listing{}, connector.NewBreaker("t", 0, 0, nil))).(connector.Inventory); !ok {
		t.Error("a traced shield hides its connector's inventory")
	}
}

// TestTracedCallsAreSpans: each call that reaches the target is a span named by the connector and the
// operation, with the grant; a failed one carries the error's class.
func TestTracedCallsAreSpans(t *testing.T) {
	receiver := otlptest.Tracing(t)
	inner := &target{present: map[string]bool{}}
	c := connector.Traced("postgres", inner)
	g := connector.Grant{ID: "01JREQ"}
	ctx := context.Background()
	if obs, err := c.Grant(ctx, g); err != nil || !obs.Present || !inner.present[g.ID] {
		t.Fatalf("Grant = %+v, %v; the target holds %v", obs, err, inner.present)
	}
	if _, err := c.Revoke(ctx, g); err != nil || inner.present[g.ID] {
		t.Fatalf("Revoke: %v; the target holds %v", err, inner.present)
	}
	inner.down = true
	if _, err := c.Grant(ctx, g); connector.ClassOf(err) != "target_unavailable" {
		t.Fatalf("Grant on a target that is down: %v", err)
	}
	received := receiver.Stop(t)

	type call struct {
		name, request, class string
		failed               bool
	}
	var got []call
	for _, s := range received {
		got = append(got, call{s.Name, s.Attributes["request_id"], s.Attributes["error.type"], s.Failed})
	}
	want := []call{
		{"postgres grant", "01JREQ", "", false},
		{"postgres revoke", "01JREQ", "", false},
		{"postgres grant", "01JREQ", "target_unavailable", true},
	}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(call{})); diff != "" {
		t.Errorf("spans (-want +got):\n%s", diff)
	}
}
