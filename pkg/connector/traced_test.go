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

// listing is a target that also lists its holdings, names what it changes and issues credentials.
type listing struct{ target }

func (c *listing) Holdings(context.Context) ([]connector.Holding, error) {
	var hs []connector.Holding
	for id := range c.present {
		hs = append(hs, connector.Holding{GrantID: id, Ref: "role " + id})
	}
	return hs, nil
}

func (c *listing) TargetRef(g connector.Grant) string    { return "role " + g.ID }
func (c *listing) IssuesCredential(connector.Grant) bool { return true }
func (c *listing) Username(g connector.Grant) string     { return "login_" + g.ID }

// TestTracedKeepsWhatTheConnectorCanDo: a traced connector answers the optional questions exactly as
// the connector it wraps, and is an Inventory only when that one is.
func TestTracedKeepsWhatTheConnectorCanDo(t *testing.T) {
	g := connector.Grant{ID: "01JREQ", Entitlement: catalogue.Entitlement{System: "payments-db", Resource: "read"}}
	plain := connector.Traced("webhook", &target{present: map[string]bool{}})
	if _, ok := plain.(connector.Inventory); ok {
		t.Error("a connector without an inventory claims one once traced")
	}
	if _, err := connector.Holdings(context.Background(), "webhook", plain); connector.ClassOf(err) != connector.ClassNoInventory {
		t.Errorf("Holdings of a connector without an inventory: %v", err)
	}
	if got := connector.TargetRef(plain, g); got != "payments-db read" {
		t.Errorf("TargetRef = %q, want the entitlement's system and resource", got)
	}
	if connector.IssuesCredential(plain, g) {
		t.Error("a connector that issues no credential issues one once traced")
	}

	full := connector.Traced("postgres", &listing{target{present: map[string]bool{"01JOLD": true}}})
	hs, err := connector.Holdings(context.Background(), "postgres", full)
	if err != nil || len(hs) != 1 || hs[0].GrantID != "01JOLD" {
		t.Errorf("Holdings = %v, %v; want the one holding", hs, err)
	}
	if got := connector.TargetRef(full, g); got != "role 01JREQ" {
		t.Errorf("TargetRef = %q, want the connector's own", got)
	}
	if !connector.IssuesCredential(full, g) || full.(connector.Issuer).Username(g) != "login_01JREQ" {
		t.Error("the credential the connector issues is lost once traced")
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
