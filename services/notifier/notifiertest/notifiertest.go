// Package notifiertest gives the notifier's tests the evidence the notifier reads: a real NATS
// server with Grantline's streams, an event store for every service (so a test writes what intake,
// policy, approval and fulfilment would) trusting one another through one trust file, and the demo
// requests the notifier's scenarios start from.
package notifiertest

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/eventstore"
	"github.com/grantline/grantline/pkg/natstest"
)

// Evidence is a running evidence stream with a writer per service.
type Evidence struct {
	Server   *server.Server
	JS       jetstream.JetStream
	Signers  []*events.Signer
	Verifier *events.Verifier
	Stores   map[events.Service]*eventstore.Store
}

// NewEvidence starts a NATS server for the test, provisions the streams and opens a store per service.
func NewEvidence(t testing.TB) *Evidence {
	t.Helper()
	ctx := context.Background()
	ns := natstest.RunServer(t)
	_, js := natstest.Connect(t, ns.ClientURL())
	if err := eventstore.Provision(ctx, js, eventstore.DefaultSettings); err != nil {
		t.Fatal(err)
	}
	e := &Evidence{Server: ns, JS: js, Stores: map[events.Service]*eventstore.Store{}}
	for _, svc := range events.Services {
		s, err := events.GenerateSigner(svc, string(svc)+"-test")
		if err != nil {
			t.Fatal(err)
		}
		e.Signers = append(e.Signers, s)
	}
	var err error
	if e.Verifier, err = events.NewVerifier(events.NewTrustFile(time.Now().Add(-time.Hour), e.Signers...)); err != nil {
		t.Fatal(err)
	}
	for _, s := range e.Signers {
		st, err := eventstore.Open(ctx, js, eventstore.Config{Signer: s, Verifier: e.Verifier, Durability: eventstore.EmbeddedProbe(ns)})
		if err != nil {
			t.Fatal(err)
		}
		e.Stores[s.Service()] = st
	}
	return e
}

// Append records drafts on request id as svc.
func (e *Evidence) Append(t testing.TB, svc events.Service, id string, drafts ...events.Draft) {
	t.Helper()
	if _, err := e.Stores[svc].Update(context.Background(), id, func(*events.Request) ([]events.Draft, error) { return drafts, nil }); err != nil {
		t.Fatalf("%s appending to %s: %v", svc, id, err)
	}
}

// PaymentsAdmin records requester asking for payments-admin for themselves and policy wanting the
// owners, then security (the demo policy), and returns the request's ID and digest.
func (e *Evidence) PaymentsAdmin(t testing.TB, requester events.Principal) (id, digest string) {
	t.Helper()
	id = events.NewID()
	s := events.Submitted{Requester: requester, Subject: events.RequestSubject{Kind: events.SubjectHuman, ID: requester.ID},
		Entitlement: "payments-admin", Justification: "INC-7: settlement job stuck", Ticket: "INC-7", DurationSeconds: 3600, Channel: "http"}
	s.RequestDigest = s.Digest()
	e.Append(t, events.Intake, id, events.Draft{Payload: s, Actor: requester.ID, CausationID: "http:" + id})
	deadline := time.Now().Add(24 * time.Hour)
	e.Append(t, events.Policy, id, events.Draft{Payload: events.PolicyDecided{Outcome: events.OutcomeApprovalRequired,
		Reasons: []string{"high risk"}, Stages: []events.Stage{{Name: "owners", Groups: []string{"payments-owners"}, MinApprovals: 1},
			{Name: "security", Groups: []string{"security"}, MinApprovals: 1}}, StagesOrdered: true, EffectiveDurationSeconds: 3600,
		ApprovalDeadline: &deadline, PolicyRevision: "sha256:rev", InputDigest: "sha256:in"}, CausationID: "decide-" + id})
	return id, s.RequestDigest
}

// The people of the demo directory, as their tokens assert them.
var (
	Alice = events.Principal{ID: "alice", Groups: []string{"engineers"}}
	Bob   = events.Principal{ID: "bob", Groups: []string{"analytics-owners", "payments-owners"}}
	Carol = events.Principal{ID: "carol", Groups: []string{"security"}}
	Frank = events.Principal{ID: "frank", Groups: []string{"engineers", "payments-owners"}}
)
