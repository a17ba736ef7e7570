package integration

import (
	"bytes"
	"context"
	"encoding/json/v2"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	jetstreamce "github.com/cloudevents/sdk-go/protocol/nats_jetstream/v2"
	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/catalogue"
	"github.com/grantline/grantline/pkg/consumer"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/eventstore"
	"github.com/grantline/grantline/pkg/idempotency"
	"github.com/grantline/grantline/pkg/natstest"
	"github.com/grantline/grantline/pkg/poll"
	"github.com/grantline/grantline/pkg/topology"
	"github.com/grantline/grantline/services/intake"
	"github.com/grantline/grantline/services/intake/throttle"
)

// client is an integration ("servicenow") as a real one would be written: CloudEvents from the SDK,
// written by its NATS binding in structured mode or, with binary set, in binary mode (the SDK's
// default), published to its NATS subject, outcomes read back from its own subject.
type client struct {
	t      *testing.T
	js     jetstream.JetStream
	binary bool
}

func (c client) send(id string, data map[string]any, republish bool) {
	c.t.Helper()
	ev := cloudevents.NewEvent()
	ev.SetID(id)
	ev.SetSource("https://servicenow.example/requests")
	ev.SetType(TypeRequest)
	if err := ev.SetData(cloudevents.ApplicationJSON, data); err != nil {
		c.t.Fatal(err)
	}
	ctx := binding.WithForceStructured(context.Background())
	if c.binary {
		ctx = binding.WithForceBinary(context.Background())
	}
	var body bytes.Buffer
	header, err := jetstreamce.WriteMsg(ctx, binding.ToMessage(&ev), &body)
	if err != nil {
		c.t.Fatal(err)
	}
	msg := nats.NewMsg(topology.IntegrationRequests("servicenow"))
	msg.Header, msg.Data = header, body.Bytes()
	opts := []jetstream.PublishOpt{jetstream.WithMsgID(id)}
	if republish {
		// A republish after the server's duplicate window: a new message ID, the same CloudEvent.
		opts = []jetstream.PublishOpt{jetstream.WithMsgID(id + "-again-" + events.NewID())}
	}
	if _, err := c.js.PublishMsg(context.Background(), msg, opts...); err != nil {
		c.t.Fatal(err)
	}
}

func (c client) outcomes() []cloudevents.Event {
	c.t.Helper()
	st, _ := c.js.Stream(context.Background(), topology.IntakeStream)
	info, _ := st.Info(context.Background())
	var out []cloudevents.Event
	for seq := uint64(1); seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(context.Background(), seq)
		if err != nil || m.Subject != topology.IntegrationOutcomes("servicenow") {
			continue
		}
		ev := cloudevents.NewEvent()
		if err := ev.UnmarshalJSON(m.Data); err != nil {
			c.t.Fatalf("outcome is not a CloudEvent: %v", err)
		}
		out = append(out, ev)
	}
	return out
}

// start runs the handler on a fresh server; each option adjusts the handler before it runs.
func start(t *testing.T, options ...func(*Handler)) (client, *eventstore.Store, jetstream.JetStream) {
	t.Helper()
	ctx := context.Background()
	ns := natstest.RunServer(t)
	_, js := natstest.Connect(t, ns.ClientURL())
	if err := eventstore.Provision(ctx, js, eventstore.DefaultSettings); err != nil {
		t.Fatal(err)
	}
	signer, _ := events.GenerateSigner(events.Intake, "intake-test")
	verifier, _ := events.NewVerifier(events.NewTrustFile(time.Now().Add(-time.Minute), signer))
	store, err := eventstore.Open(ctx, js, eventstore.Config{Signer: signer, Verifier: verifier, Durability: eventstore.EmbeddedProbe(ns)})
	if err != nil {
		t.Fatal(err)
	}
	keys, _ := idempotency.Open(ctx, js, topology.IdempotencyBucket, "requests", 1)
	cat, _ := catalogue.Load("../../../examples/catalogue.yaml")
	integrations, err := intake.LoadIntegrations("../../../examples/integrations.yaml")
	if err != nil {
		t.Fatal(err)
	}
	h := &Handler{JS: js, Store: store, Catalogue: cat, Integrations: integrations, Idempotency: keys, Now: time.Now,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for _, o := range options {
		o(h)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- consumer.Run(runCtx, js, Spec(), h.Handle, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()
	t.Cleanup(func() { cancel(); <-done })
	return client{t: t, js: js}, store, js
}

func request(requester string, groups ...string) map[string]any {
	return map[string]any{
		"requester":   map[string]any{"id": requester, "groups": groups},
		"entitlement": "analytics-read", "justification": "quarterly numbers for finance", "duration": "1h", "ticket": "RITM0012",
	}
}

func TestOneRequestPerCloudEventID(t *testing.T) {
	c, store, _ := start(t)
	c.send("ce-1", request("alice", "engineers"), false)
	c.send("ce-1", request("alice", "engineers"), false) // a duplicate publish
	c.send("ce-1", request("alice", "engineers"), true)  // republished after the duplicate window
	c.send("ce-2", request("frank", "engineers"), false)

	var outs []cloudevents.Event
	poll.Until(t, 20*time.Second, "outcomes for both CloudEvents", func() bool {
		outs = c.outcomes()
		return len(outs) >= 2
	})
	ids := map[string]string{}
	for _, o := range outs {
		if o.Type() != TypeAccepted {
			t.Fatalf("outcome %s: %s", o.Type(), o.Data())
		}
		var data Outcome
		if err := o.DataAs(&data); err != nil {
			t.Fatal(err)
		}
		if prev, ok := ids[o.Subject()]; ok && prev != data.RequestID {
			t.Fatalf("CloudEvent %s answered with two request IDs", o.Subject())
		}
		ids[o.Subject()] = data.RequestID
	}
	if len(outs) != 2 || len(ids) != 2 || ids["ce-1"] == ids["ce-2"] {
		t.Fatalf("outcomes %v", ids)
	}
	l, err := store.Load(context.Background(), ids["ce-1"])
	if err != nil {
		t.Fatal(err)
	}
	s := l.Request.Submitted()
	if len(l.Events) != 1 || s.Channel != "integration:servicenow" || s.Requester.ID != "alice" {
		t.Fatalf("request from ce-1: %d events, channel %s, requester %s", len(l.Events), s.Channel, s.Requester.ID)
	}
}

// TestEitherContentModeIsOneRequestPerCloudEventID: a request in binary mode (the SDK's default) is
// accepted like a structured one, and the same CloudEvent republished in the other mode is the same
// request (its answer is the first one again, which the stream deduplicates); a binary one with an
// attribute intake does not know is refused and dead-lettered, as a structured one is.
func TestEitherContentModeIsOneRequestPerCloudEventID(t *testing.T) {
	c, _, js := start(t)
	c.binary = true
	c.send("ce-1", request("alice", "engineers"), false)
	c.binary = false
	c.send("ce-1", request("alice", "engineers"), true)
	odd := nats.NewMsg(topology.IntegrationRequests("servicenow"))
	odd.Header = nats.Header{"ce-specversion": {"1.0"}, "ce-id": {"ce-2"}, "ce-source": {"/s"}, "ce-type": {TypeRequest}, "ce-approved": {"true"}}
	odd.Data, _ = json.Marshal(request("alice", "engineers"))
	if _, err := js.PublishMsg(context.Background(), odd); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 20*time.Second, "an answer to each CloudEvent", func() bool { return len(c.outcomes()) == 2 })
	for _, o := range c.outcomes() {
		var data Outcome
		if err := o.DataAs(&data); err != nil {
			t.Fatal(err)
		}
		accepted := o.Subject() == "ce-1" && o.Type() == TypeAccepted
		refused := o.Subject() == "ce-2" && o.Type() == TypeRefused && strings.Contains(data.Reason, `unknown attribute "approved"`)
		if !accepted && !refused {
			t.Errorf("%s answered %s: %+v", o.Subject(), o.Type(), data)
		}
	}
	settle(t, js)
	if n := messages(t, js, topology.EventsStream); n != 1 {
		t.Errorf("%d events in the evidence stream, want ce-1's one request", n)
	}
	if n := messages(t, js, topology.DLQStream); n != 1 {
		t.Errorf("%d dead letters, want ce-2's alone", n)
	}
}

// TestRefusalsAreAnsweredWithReasons: each row is something the integration may not do; it gets a
// refused outcome naming why, and the CloudEvent is dead-lettered.
func TestRefusalsAreAnsweredWithReasons(t *testing.T) {
	c, _, js := start(t)
	cases := []struct {
		id   string
		data map[string]any
		says string
	}{
		{"r-1", request("carol", "security"), `may not submit for requester \"carol\"`},
		{"r-2", request("alice", "security"), `may not assert group \"security\"`},
		{"r-3", func() map[string]any { d := request("alice", "engineers"); d["duration"] = "9h"; return d }(), "longer than"},
		{"r-4", func() map[string]any { d := request("alice", "engineers"); d["approved"] = true; return d }(), "malformed data"},
		{"r-5", func() map[string]any { d := request("alice", "engineers"); d["extends"] = events.NewID(); return d }(), "there is no request"},
	}
	for _, tc := range cases {
		c.send(tc.id, tc.data, false)
	}
	poll.Until(t, 20*time.Second, "an answer to every refused CloudEvent", func() bool { return len(c.outcomes()) == len(cases) })
	for _, o := range c.outcomes() {
		if o.Type() != TypeRefused {
			t.Fatalf("%s was %s", o.Subject(), o.Type())
		}
		for _, tc := range cases {
			if tc.id == o.Subject() && !strings.Contains(string(o.Data()), tc.says) {
				t.Errorf("%s refused with %s, want it to say %q", tc.id, o.Data(), tc.says)
			}
		}
	}
	poll.Until(t, 10*time.Second, "the refused CloudEvents in the dead-letter stream", func() bool {
		st, err := js.Stream(context.Background(), topology.DLQStream)
		if err != nil {
			return false
		}
		info, err := st.Info(context.Background())
		return err == nil && info.State.Msgs == uint64(len(cases))
	})
}

// TestAnIntegrationOverItsLimitIsRefusedWithTheReason: an integration that floods intake gets its
// burst accepted and every CloudEvent after it refused, each answered with the reason and when to
// retry; nothing over the limit reaches the evidence stream, nor the dead letters (nothing in them
// is wrong, and a flood must not be copied there).
func TestAnIntegrationOverItsLimitIsRefusedWithTheReason(t *testing.T) {
	const burst, sent = 5, 12
	c, _, js := start(t, func(h *Handler) {
		h.Submissions = throttle.New(throttle.Limit{Burst: burst, Every: time.Hour}, time.Now)
	})
	for i := range sent {
		c.send(fmt.Sprintf("flood-%02d", i), request("alice", "engineers"), false)
	}
	poll.Until(t, 20*time.Second, "an answer to every CloudEvent", func() bool { return len(c.outcomes()) == sent })
	accepted := 0
	for _, o := range c.outcomes() {
		switch o.Type() {
		case TypeAccepted:
			accepted++
		case TypeRefused:
			var out Outcome
			if err := json.Unmarshal(o.Data(), &out); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out.Reason, `too many submissions by integration:servicenow`) || !strings.Contains(out.Reason, "retry after") {
				t.Errorf("%s refused with %q, want the limit and when to retry", o.Subject(), out.Reason)
			}
		default:
			t.Fatalf("%s answered %s", o.Subject(), o.Type())
		}
	}
	if accepted != burst {
		t.Fatalf("%d of %d CloudEvents accepted, want the burst of %d", accepted, sent, burst)
	}
	if n := messages(t, js, topology.EventsStream); n != burst {
		t.Fatalf("%d events in the evidence stream, want the burst's %d submitted", n, burst)
	}
	settle(t, js)
	if n := messages(t, js, topology.DLQStream); n != 0 {
		t.Fatalf("%d dead letters after the flood, want none", n)
	}
}

// settle waits until every delivery to intake is settled (acked, or dead-lettered first), so what
// the streams hold can be counted.
func settle(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	poll.Until(t, 20*time.Second, "every delivery settled", func() bool {
		c, err := js.Consumer(context.Background(), topology.IntakeIntegrations.Stream, topology.IntakeIntegrations.Durable)
		if err != nil {
			return false
		}
		ci, err := c.Info(context.Background())
		return err == nil && ci.NumPending == 0 && ci.NumAckPending == 0
	})
}

// messages is the number of messages in stream.
func messages(t *testing.T, js jetstream.JetStream, stream string) uint64 {
	t.Helper()
	st, err := js.Stream(context.Background(), stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}
