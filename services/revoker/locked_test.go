package revoker_test

import (
	"testing"
	"time"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/services/revoker"
)

// TestDecideLocked: which of alice's analytics-read grants (on postgres/analytics) a lock ends, and how
// the evidence says so.
func TestDecideLocked(t *testing.T) {
	lockOn := func(kind events.LockScopeKind, id string) *events.Lock {
		lid := events.NewID()
		sam := events.Principal{ID: "sam", Groups: []string{"security"}}
		l, err := events.FoldLock(lid, []events.Event{{Envelope: events.Envelope{ID: events.NewID(), Type: events.TypeLockPlaced,
			Subject: lid, Time: t0, Actor: sam.ID}, Payload: events.LockPlaced{Scope: events.LockScope{Kind: kind, ID: id},
			Reason: "laptop stolen", PlacedBy: sam}}})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	submittedOnly, _ := submitted("analytics-read", t0)
	cases := []struct {
		name  string
		lock  *events.Lock
		grant *grant
		asks  bool
	}{
		{"a lock on the holder", lockOn(events.LockUser, "alice"), newGrant(t), true},
		{"a lock on the entitlement", lockOn(events.LockEntitlement, "analytics-read"), newGrant(t), true},
		{"a lock on the target system", lockOn(events.LockTarget, "postgres/analytics"), newGrant(t), true},
		{"a lock on someone else", lockOn(events.LockUser, "bob"), newGrant(t), false},
		{"a lock on another system", lockOn(events.LockTarget, "postgres/payments"), newGrant(t), false},
		{"a request not granted yet", lockOn(events.LockUser, "alice"), submittedOnly, false},
		{"a grant already being revoked", lockOn(events.LockUser, "alice"),
			newGrant(t).add("alice", events.RevocationRequested{By: "alice", Reason: events.RevokeEarly}), false},
		{"a grant past its expiry, being revoked", lockOn(events.LockUser, "alice"),
			newGrant(t).addAt(expiry.Add(time.Second), "service:revoker", events.Expired{ExpiresAt: expiry}), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.grant.request(t)
			drafts, err := revoker.DecideLocked(tc.lock, "postgres/analytics")(r)
			if err != nil || (len(drafts) == 1) != tc.asks {
				t.Fatalf("drafts %v, error %v; want asking %v", drafts, err, tc.asks)
			}
			if !tc.asks {
				return
			}
			p := drafts[0].Payload.(events.RevocationRequested)
			if p.Reason != events.RevokeLocked || p.LockID != tc.lock.ID() || p.By != "sam" || drafts[0].Actor != "sam" {
				t.Fatalf("requested %+v by %s", p, drafts[0].Actor)
			}
			if err := r.Apply(events.Event{Envelope: events.Envelope{ID: events.NewID(), Type: p.EventType(), Subject: r.ID(),
				Time: t0.Add(time.Minute), Actor: drafts[0].Actor}, Payload: p}); err != nil || r.RevocationDue() != events.RevokeLocked {
				t.Fatalf("the request refuses the revocation: %v", err)
			}
		})
	}
}
