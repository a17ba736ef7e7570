package revoker_test

import (
	"errors"
	"testing"
	"time"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/services/revoker"
)

var (
	present = revoker.Drift{Connector: "postgres", TargetRef: "role grantline_x", Observed: events.Observed{Present: true}}
	absent  = revoker.Drift{Connector: "postgres", TargetRef: "role grantline_x", Observed: events.Observed{Present: false}}
)

func revokedGrant(t *testing.T) *grant {
	return newGrant(t).add("alice", events.RevocationRequested{By: "alice", Reason: events.RevokeEarly}).
		add(revoker.Revoker, events.Revoked{Reason: events.RevokeEarly})
}

// TestDrift is what the reconciler records for what it found on a target, scenario by scenario: the
// decision to apply, the request's history, and the drift kind recorded ("" for nothing).
func TestDrift(t *testing.T) {
	during := t0.Add(time.Minute)
	cases := []struct {
		name    string
		history func(*testing.T) *grant
		decide  func(*events.Request) ([]events.Draft, error)
		want    events.DriftKind
	}{
		{"access present after an early revocation is revoked again", revokedGrant, revoker.DecideFoundAfterRevocation(present), events.DriftAfterRevocation},
		{"access listed after revocation but giving none now", revokedGrant, revoker.DecideFoundAfterRevocation(absent), ""},
		{"access found again while it is being revoked again", func(t *testing.T) *grant {
			return revokedGrant(t).add(revoker.Revoker, events.DriftDetected{Kind: events.DriftAfterRevocation, Connector: "postgres",
				TargetRef: "role grantline_x", Observed: events.Observed{Present: true}, Action: events.DriftRevoke})
		}, revoker.DecideFoundAfterRevocation(present), ""},
		{"access of a live grant is no drift after revocation", newGrant, revoker.DecideFoundAfterRevocation(present), ""},
		{"a live grant's access dropped by a DBA", newGrant, revoker.DecideMissing(absent, during), events.DriftMissing},
		{"a live grant's access that the target shows", newGrant, revoker.DecideMissing(present, during), ""},
		{"a grant past its expiry belongs to the expiry", newGrant, revoker.DecideMissing(absent, expiry), ""},
		{"a grant whose revocation is under way", func(t *testing.T) *grant {
			return newGrant(t).add("alice", events.RevocationRequested{By: "alice", Reason: events.RevokeEarly})
		}, revoker.DecideMissing(absent, during), ""},
		{"missing access recorded before", func(t *testing.T) *grant {
			return newGrant(t).add(revoker.Revoker, events.DriftDetected{Kind: events.DriftMissing, Connector: "postgres",
				TargetRef: "role grantline_x", Action: events.DriftRecorded})
		}, revoker.DecideMissing(absent, during), ""},
		{"a revoked grant's access is not missing", revokedGrant, revoker.DecideMissing(absent, during), ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.history(t).request(t)
			drafts, err := tc.decide(r)
			if err != nil {
				t.Fatal(err)
			}
			if tc.want == "" {
				if len(drafts) != 0 {
					t.Fatalf("recorded %+v, want nothing", drafts[0].Payload)
				}
				return
			}
			if len(drafts) != 1 {
				t.Fatalf("%d drafts, want drift %s", len(drafts), tc.want)
			}
			d := drafts[0].Payload.(events.DriftDetected)
			if d.Kind != tc.want || d.TargetRef != "role grantline_x" || drafts[0].Actor != revoker.Revoker {
				t.Fatalf("recorded %+v by %s", d, drafts[0].Actor)
			}
			if err := r.Apply(events.Event{Envelope: events.Envelope{ID: events.NewID(), Type: d.EventType(), Subject: r.ID(), Time: during,
				Actor: revoker.Revoker}, Payload: d}); err != nil {
				t.Fatalf("the aggregate refuses what the reconciler decided: %v", err)
			}
		})
	}
}

// TestUnexplainedAccessIsOneFinding: a stray role becomes a finding once; found again, it is the same
// finding and nothing is appended.
func TestUnexplainedAccessIsOneFinding(t *testing.T) {
	id := events.FindingID(present.Connector, present.TargetRef)
	r := events.NewRequest(id)
	drafts, err := revoker.DecideUnexplained(present)(r)
	if err != nil || len(drafts) != 1 {
		t.Fatalf("%v %v", drafts, err)
	}
	if err := r.Apply(events.Event{Envelope: events.Envelope{ID: events.NewID(), Type: events.TypeDriftDetected, Subject: id, Time: t0,
		Actor: revoker.Revoker}, Payload: drafts[0].Payload}); err != nil || r.Status() != events.StatusFinding {
		t.Fatalf("the finding folds to %s: %v", r.Status(), err)
	}
	if again, err := revoker.DecideUnexplained(present)(r); err != nil || len(again) != 0 {
		t.Fatalf("found again: %v %v", again, err)
	}
}

// TestRevokedAgain: the revocation again is recorded only when due, and only once the target shows the
// access gone.
func TestRevokedAgain(t *testing.T) {
	due := revokedGrant(t).add(revoker.Revoker, events.DriftDetected{Kind: events.DriftAfterRevocation, Connector: "postgres",
		TargetRef: "role grantline_x", Observed: events.Observed{Present: true}, Action: events.DriftRevoke})
	if _, err := revoker.DecideRevokedAgain(present.Observed, false)(due.request(t)); !errors.Is(err, revoker.ErrStillPresent) {
		t.Fatalf("still present: %v", err)
	}
	drafts, err := revoker.DecideRevokedAgain(absent.Observed, true)(due.request(t))
	if err != nil || len(drafts) != 1 {
		t.Fatalf("%v %v", drafts, err)
	}
	if rv := drafts[0].Payload.(events.Revoked); rv.Reason != events.RevokeDrift || !rv.CredentialDestroyed {
		t.Fatalf("revoked %+v", rv)
	}
	if drafts, err := revoker.DecideRevokedAgain(absent.Observed, false)(revokedGrant(t).request(t)); err != nil || len(drafts) != 0 {
		t.Fatalf("nothing due: %v %v", drafts, err)
	}
}
