package devmode

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/grantline/grantline/pkg/otlptest"
	"github.com/grantline/grantline/pkg/poll"
	"github.com/grantline/grantline/pkg/telemetry"
	"github.com/grantline/grantline/pkg/topology"
)

// TestDevTracesOneRequestFromSubmitToRevocation: with --traces naming an OTLP/HTTP receiver, alice's
// auto-approved five-second grant is one trace, received as a collector receives it: the HTTP
// submission at its root, then intake's append, policy's reaction and decision, fulfilment's reaction,
// its grant on the PostgreSQL target and its append, and the revoker's reaction to the expiry timer,
// its revocation on the target and its append, each span's parent in the same trace.
func TestDevTracesOneRequestFromSubmitToRevocation(t *testing.T) {
	receiver := otlptest.Start(t)
	cfg := testConfig(t, t.TempDir())
	cfg.Traces = receiver.URL()
	e := start(t, cfg)
	token, _ := e.Token("alice")
	var created struct {
		ID string `json:"id"`
	}
	body := `{"entitlement":"analytics-read","duration":"5s","justification":"trace a request end to end"}`
	if status := httpJSON(t, "POST", "http://"+e.HTTPAddr()+"/v1/requests", token, body, &created); status != http.StatusAccepted {
		t.Fatalf("submit answered %d", status)
	}

	// Every span of the request's path, by what it is: a reaction by its durable consumer, an append by
	// the service that appended and the event's type, anything else by its name.
	want := []string{
		"POST /v1/requests",
		"append submitted by intake",
		"reaction " + topology.PolicyDecisions.Durable, "append policy_decided by policy",
		"reaction " + topology.FulfilmentGrants.Durable, "postgres grant", "append granted by fulfilment",
		// The expiry's timer is its second's, shared with every grant due then, and so is the batch
		// revocation at the target; the grant's own part continues the trace it was armed in.
		"revoker expire", "append revoked by revoker",
	}
	var trace []otlptest.Span
	var seen []string
	poll.Until(t, 40*time.Second, "one trace from the submission to the revocation", func() bool {
		trace, seen = nil, nil
		for _, s := range receiver.Spans() {
			if s.Name == "append submitted" && s.Attributes[telemetry.KeyRequestID] == created.ID {
				trace = receiver.Trace(s.TraceID)
			}
		}
		for _, s := range trace {
			seen = append(seen, what(s))
		}
		return !slices.ContainsFunc(want, func(w string) bool { return !slices.Contains(seen, w) })
	})

	ids := map[string]bool{}
	for _, s := range trace {
		ids[s.SpanID] = true
	}
	var roots []string
	for _, s := range trace {
		switch {
		case s.ParentID == "":
			roots = append(roots, s.Name)
		case !ids[s.ParentID]:
			t.Errorf("span %q has a parent outside the trace", s.Name)
		}
		if s.Service != "grantline-dev" {
			t.Errorf("span %q came from service %q, want grantline-dev", s.Name, s.Service)
		}
	}
	if len(roots) != 1 || roots[0] != "POST /v1/requests" {
		t.Errorf("the trace's roots are %v, want the submission alone", roots)
	}
	t.Logf("%d spans in the trace:\n%s", len(trace), strings.Join(seen, "\n"))
}

// what names span s for the test: reactions by durable, appends by service and event type.
func what(s otlptest.Span) string {
	switch {
	case strings.HasSuffix(s.Name, " process"):
		return "reaction " + s.Attributes["messaging.consumer.group.name"]
	case strings.HasPrefix(s.Name, "append "):
		return s.Name + " by " + s.Attributes["grantline.service"]
	}
	return s.Name
}
