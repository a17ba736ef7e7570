package devmode

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/examples/integration"
	"github.com/grantline/grantline/pkg/brokeraccess"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/topology"
)

// TestTheExampleIntegrationRunsWithEachBindingAndMode runs the example integration (examples/integration:
// the CloudEvents Go SDK and its NATS or JetStream binding, each with its defaults) against dev as the
// servicenow integration's NATS user, in every combination of binding and content mode: the request
// CloudEvent reaches intake in the mode asked for (the SDK's core NATS binding writes structured mode
// only), its outcome comes back to the same client naming the request (over JetStream through the
// consumer dev provisioned for servicenow, which the client binds to), which alice then finds as the
// integration submitted it, and the broker refused the integration nothing.
func TestTheExampleIntegrationRunsWithEachBindingAndMode(t *testing.T) {
	c := topology.IntegrationConsumer("servicenow")
	if c.Stream != integration.Stream || c.Durable != integration.Consumer("servicenow") ||
		topology.IntegrationDeliverGroup("servicenow") != integration.DeliverGroup("servicenow") {
		t.Fatalf("the example binds to %s/%s in group %s, Grantline provisions %+v", integration.Stream, integration.Consumer("servicenow"),
			integration.DeliverGroup("servicenow"), c)
	}
	e := start(t, testConfig(t, t.TempDir()))
	_, opjs := connectAs(t, e, brokeraccess.Operator)
	token, err := e.Token("alice")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		binding integration.Binding
		mode    integration.Mode
		// wire is the mode the request travels in.
		wire integration.Mode
	}{
		{integration.JetStream, integration.Binary, integration.Binary},
		{integration.JetStream, integration.Structured, integration.Structured},
		{integration.NATS, integration.Binary, integration.Structured},
		{integration.NATS, integration.Structured, integration.Structured},
	} {
		t.Run(fmt.Sprintf("%s/%s", tc.binding, tc.mode), func(t *testing.T) {
			var mu sync.Mutex
			var violations []string
			refused := func() string {
				mu.Lock()
				defer mu.Unlock()
				return strings.Join(violations, "\n")
			}
			c, err := integration.Dial(integration.Config{
				URL: e.NATSURL(), Name: "servicenow", NKeyFile: e.NATSKeys().Seeds[brokeraccess.Integration("servicenow")],
				Source: "https://servicenow.example/requests", Binding: tc.binding, Mode: tc.mode,
				Options: []nats.Option{nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
					if errors.Is(err, nats.ErrPermissionViolation) {
						mu.Lock()
						violations = append(violations, err.Error())
						mu.Unlock()
					}
				})},
			})
			if err != nil {
				t.Fatalf("%v; the broker refused: %s", err, refused())
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			id := "sdk-" + events.NewID()
			outcome := make(chan integration.Outcome, 1)
			stopped, err := c.Listen(ctx, func(o integration.Outcome) {
				if o.CloudEventID == id {
					select {
					case outcome <- o:
					default: // a repeated answer would be the same
					}
				}
			})
			if err != nil {
				t.Fatalf("%v; the broker refused: %s", err, refused())
			}
			if err := c.Submit(ctx, id, integration.Request{
				Requester: integration.Requester{ID: "alice", Groups: []string{"engineers"}}, Entitlement: "analytics-read",
				Justification: "weekly revenue report", Duration: "1h", Ticket: "RITM0042",
			}); err != nil {
				t.Fatal(err)
			}
			var o integration.Outcome
			select {
			case o = <-outcome:
			case <-ctx.Done():
				t.Fatalf("no outcome for CloudEvent %s; the broker refused: %s", id, refused())
			}
			if !o.Accepted || o.RequestID == "" || o.Status != string(events.StatusSubmitted) {
				t.Fatalf("outcome %+v", o)
			}
			if wire := wireMode(t, opjs, id); wire != tc.wire {
				t.Errorf("the request travelled in %s mode, want %s", wire, tc.wire)
			}
			var view struct {
				Channel   string `json:"channel"`
				Ticket    string `json:"ticket"`
				Requester struct {
					ID string `json:"id"`
				} `json:"requester"`
			}
			if code := httpJSON(t, "GET", "http://"+e.HTTPAddr()+"/v1/requests/"+o.RequestID, token, "", &view); code != 200 ||
				view.Channel != "integration:servicenow" || view.Requester.ID != "alice" || view.Ticket != "RITM0042" {
				t.Errorf("request %s: %d %+v", o.RequestID, code, view)
			}
			cancel()
			if err := <-stopped; err != nil {
				t.Errorf("receiver: %v", err)
			}
			if err := c.Close(context.Background()); err != nil {
				t.Errorf("close: %v", err)
			}
			if r := refused(); r != "" {
				t.Errorf("the broker refused the integration:\n%s", r)
			}
		})
	}
}

// wireMode finds the request CloudEvent id in the intake stream and says which content mode it is in.
func wireMode(t *testing.T, js jetstream.JetStream, id string) integration.Mode {
	t.Helper()
	st, err := js.Stream(context.Background(), topology.IntakeStream)
	if err != nil {
		t.Fatal(err)
	}
	m, err := st.GetLastMsgForSubject(context.Background(), topology.IntegrationRequests("servicenow"))
	if err != nil {
		t.Fatal(err)
	}
	if m.Header.Get("ce-id") == id {
		return integration.Binary
	}
	if strings.Contains(string(m.Data), `"id":"`+id+`"`) {
		return integration.Structured
	}
	t.Fatalf("the last request in the stream is not CloudEvent %s: %v %s", id, m.Header, m.Data)
	return ""
}
