// Package notifiertest gives the notifier's tests the evidence the notifier reads: a real NATS
// server with Grantline's streams, an event store for every service (so a test writes what intake,
// policy, approval and fulfilment would) trusting one another through one trust file, and the demo
// requests the notifier's scenarios start from.
package notifiertest

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/brokeraccess"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/eventstore"
	"github.com/grantline/grantline/pkg/natsembed"
	"github.com/grantline/grantline/pkg/natstest"
)

// Evidence is a running evidence stream with a writer per service.
type Evidence struct {
	Server *server.Server
	// JS is a connection with every right (the operator's on a broker that enforces the matrix).
	JS       jetstream.JetStream
	Signers  []*events.Signer
	Verifier *events.Verifier
	Stores   map[events.Service]*eventstore.Store
	// Creds are the NKey seed files of every user of the matrix, on a broker that enforces it.
	Creds map[brokeraccess.User]string
}

// NewEvidence starts a NATS server for the test, provisions the streams and opens a store per service.
func NewEvidence(t testing.TB) *Evidence {
	t.Helper()
	ns := natstest.RunServer(t)
	_, js := natstest.Connect(t, ns.ClientURL())
	e := &Evidence{Server: ns, JS: js}
	e.open(t, func(events.Service) jetstream.JetStream { return js })
	return e
}

// NewDeployedEvidence is NewEvidence on a broker that enforces the separation of duties as deployed
// (pkg/brokeraccess), with its monitoring endpoint: every user of the matrix has an NKey in Creds, the
// operator provisions the streams, and each service writes as its own user.
func NewDeployedEvidence(t testing.TB) *Evidence {
	t.Helper()
	m, err := brokeraccess.NewMatrix(nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	creds, pubs := map[brokeraccess.User]string{}, map[brokeraccess.User]string{}
	for _, u := range m.Users {
		seed, pub, err := brokeraccess.NewKey()
		if err != nil {
			t.Fatal(err)
		}
		creds[u], pubs[u] = filepath.Join(dir, string(u)+".nk"), pub
		if err := os.WriteFile(creds[u], brokeraccess.SeedFile(seed), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	users, err := m.NkeyUsers(pubs)
	if err != nil {
		t.Fatal(err)
	}
	ns, err := natsembed.Start(natsembed.Options{Dir: t.TempDir(), Port: -1, HTTPPort: -1, Users: users})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	connect := func(u brokeraccess.User) jetstream.JetStream {
		opts, err := brokeraccess.ClientOptions(u, creds[u])
		if err != nil {
			t.Fatal(err)
		}
		nc, err := nats.Connect(ns.ClientURL(), opts...)
		if err != nil {
			t.Fatalf("connect as %s: %v", u, err)
		}
		t.Cleanup(nc.Close)
		js, err := jetstream.New(nc, jetstream.WithDefaultTimeout(10*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		return js
	}
	e := &Evidence{Server: ns, JS: connect(brokeraccess.Operator), Creds: creds}
	e.open(t, func(svc events.Service) jetstream.JetStream { return connect(brokeraccess.User(svc)) })
	return e
}

// open provisions the streams and opens each service's store on the connection conn gives it.
func (e *Evidence) open(t testing.TB, conn func(events.Service) jetstream.JetStream) {
	t.Helper()
	ctx := context.Background()
	if err := eventstore.Provision(ctx, e.JS, eventstore.DefaultSettings); err != nil {
		t.Fatal(err)
	}
	e.Stores = map[events.Service]*eventstore.Store{}
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
		st, err := eventstore.Open(ctx, conn(s.Service()), eventstore.Config{Signer: s, Verifier: e.Verifier,
			Durability: eventstore.EmbeddedProbe(e.Server)})
		if err != nil {
			t.Fatal(err)
		}
		e.Stores[s.Service()] = st
	}
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
