package consumer

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/eventstore"
	"github.com/grantline/grantline/pkg/natstest"
	"github.com/grantline/grantline/pkg/poll"
	"github.com/grantline/grantline/pkg/topology"
)

// TestRedeliveredReactionAppendsOnce runs a policy-like reaction through the real runner: its first
// delivery appends the decision and then fails before acknowledging (a crash between append and ack);
// the redelivery must find the decision already there and append nothing.
func TestRedeliveredReactionAppendsOnce(t *testing.T) {
	ns := natstest.RunServer(t)
	_, js := natstest.Connect(t, ns.ClientURL())
	ctx := context.Background()
	if err := eventstore.Provision(ctx, js, eventstore.DefaultSettings); err != nil {
		t.Fatal(err)
	}
	intakeKey, _ := events.GenerateSigner(events.Intake, "intake-1")
	policyKey, _ := events.GenerateSigner(events.Policy, "policy-1")
	verifier, _ := events.NewVerifier(events.NewTrustFile(time.Now().Add(-time.Minute), intakeKey, policyKey))
	open := func(s *events.Signer) *eventstore.Store {
		st, err := eventstore.Open(ctx, js, eventstore.Config{Signer: s, Verifier: verifier, Durability: eventstore.EmbeddedProbe(ns)})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	intake, policy := open(intakeKey), open(policyKey)

	var deliveries atomic.Int32
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- Run(runCtx, js, Spec{
			Stream: topology.EventsStream, Durable: "policy", FilterSubjects: []string{"grantline.events.*.submitted"},
			Backoff: func(int) time.Duration { return 10 * time.Millisecond },
		}, func(ctx context.Context, msg jetstream.Msg) error {
			d, err := policy.Receive(msg)
			if err != nil {
				return Permanent(err)
			}
			_, err = policy.UpdateFrom(ctx, d.RequestID, d.Seq, func(r *events.Request) ([]events.Draft, error) {
				return []events.Draft{{Payload: events.PolicyDecided{Outcome: events.OutcomeAutoApproved, Reasons: []string{"low risk"},
					EffectiveDurationSeconds: 600, PolicyRevision: "sha256:test", InputDigest: "sha256:test"}, CausationID: d.Event.ID}}, nil
			})
			if deliveries.Add(1) == 1 && err == nil {
				return errors.New("crashed after appending, before acknowledging")
			}
			return err
		}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()
	t.Cleanup(func() { cancel(); <-done })

	id := events.NewID()
	sub := events.Submitted{Requester: events.Principal{ID: "alice"}, Subject: events.RequestSubject{Kind: events.SubjectHuman, ID: "alice"},
		Entitlement: "pg-read", Justification: "report", DurationSeconds: 600, Channel: "http"}
	sub.RequestDigest = sub.Digest()
	if _, err := intake.Update(ctx, id, func(*events.Request) ([]events.Draft, error) {
		return []events.Draft{{Payload: sub, Actor: "alice", CausationID: "http:1"}}, nil
	}); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 20*time.Second, "the redelivery to be handled and acknowledged", func() bool {
		c, err := js.Consumer(ctx, topology.EventsStream, "policy")
		if err != nil {
			return false
		}
		info, err := c.Info(ctx)
		return err == nil && deliveries.Load() >= 2 && info.NumAckPending == 0 && info.NumPending == 0
	})
	// A redelivery that tried to decide again would be refused, retried and dead-lettered instead.
	if n := deliveries.Load(); n != 2 {
		t.Fatalf("%d deliveries, want 2: the redelivery should have been a clean no-op", n)
	}
	l, err := policy.Load(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Events) != 2 || l.Request.Status() != events.StatusApproved {
		t.Fatalf("%d events, status %s; want the submission and exactly one decision", len(l.Events), l.Request.Status())
	}
}
