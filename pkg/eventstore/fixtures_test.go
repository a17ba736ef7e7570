package eventstore

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/natstest"
)

// world is one JetStream with the streams provisioned and a store per service, all trusting each
// other's keys through one trust file.
type world struct {
	js      jetstream.JetStream
	signers map[events.Service]*events.Signer
	stores  map[events.Service]*Store
}

func newWorld(t *testing.T, js jetstream.JetStream, probe SyncProbe, settings StreamSettings) *world {
	t.Helper()
	ctx := context.Background()
	if err := Provision(ctx, js, settings); err != nil {
		t.Fatalf("provision: %v", err)
	}
	w := &world{js: js, signers: map[events.Service]*events.Signer{}, stores: map[events.Service]*Store{}}
	var all []*events.Signer
	for _, svc := range events.Services {
		s, err := events.GenerateSigner(svc, string(svc)+"-test")
		if err != nil {
			t.Fatal(err)
		}
		w.signers[svc] = s
		all = append(all, s)
	}
	verifier, err := events.NewVerifier(events.NewTrustFile(time.Now().Add(-time.Hour), all...))
	if err != nil {
		t.Fatal(err)
	}
	for _, svc := range events.Services {
		st, err := Open(ctx, js, Config{Signer: w.signers[svc], Verifier: verifier, Durability: probe})
		if err != nil {
			t.Fatalf("open store for %s: %v", svc, err)
		}
		w.stores[svc] = st
	}
	return w
}

func singleNode(t *testing.T) (*world, *server.Server) {
	ns := natstest.RunServer(t)
	_, js := natstest.Connect(t, ns.ClientURL())
	return newWorld(t, js, EmbeddedProbe(ns), DefaultSettings), ns
}

func submitted(requester string) events.Submitted {
	s := events.Submitted{
		Requester:   events.Principal{ID: requester, Groups: []string{"engineers"}},
		Subject:     events.RequestSubject{Kind: events.SubjectHuman, ID: requester},
		Entitlement: "pg-prod-admin", Justification: "INC-42", DurationSeconds: 3600, Channel: "http",
	}
	s.RequestDigest = s.Digest()
	return s
}

// pendingRequest creates a request that awaits approvals from reviewers in one stage needing many
// approvals, so concurrent reviewers each have something legal to append.
func (w *world) pendingRequest(t *testing.T, approvals int) string {
	t.Helper()
	ctx := context.Background()
	id := events.NewID()
	if _, err := w.stores[events.Intake].Update(ctx, id, func(*events.Request) ([]events.Draft, error) {
		return []events.Draft{{Payload: submitted("alice"), Actor: "alice", CausationID: "cmd-" + id}}, nil
	}); err != nil {
		t.Fatalf("submit: %v", err)
	}
	deadline := time.Now().Add(time.Hour)
	if _, err := w.stores[events.Policy].Update(ctx, id, func(*events.Request) ([]events.Draft, error) {
		return []events.Draft{{Payload: events.PolicyDecided{
			Outcome: events.OutcomeApprovalRequired, Reasons: []string{"test"}, EffectiveDurationSeconds: 3600,
			Stages:           []events.Stage{{Name: "owners", Groups: []string{"reviewers"}, MinApprovals: approvals}},
			ApprovalDeadline: &deadline, PolicyRevision: "sha256:test", InputDigest: "sha256:test",
		}, CausationID: "decide-" + id}}, nil
	}); err != nil {
		t.Fatalf("decide: %v", err)
	}
	return id
}

func reviewBy(reviewer, digest string) events.Draft {
	return events.Draft{Payload: events.Reviewed{
		Reviewer: events.Principal{ID: reviewer, Groups: []string{"reviewers"}}, Stage: 0,
		Decision: events.ReviewApprove, RequestDigest: digest,
	}, Actor: reviewer, CausationID: "review-" + reviewer}
}
