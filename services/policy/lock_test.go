package policy_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/services/policy"
)

// TestLocksDenyWhatTheyCover: locks as security places them (folded from their events) against the demo
// bundle and catalogue. A lock covering the request denies it, naming the lock; one that does not, or no
// longer holds, changes nothing, not even the input's digest; an emergency passes only a lock that
// allows it.
func TestLocksDenyWhatTheyCover(t *testing.T) {
	d := loadDemo(t)
	engine := loadEngine(t, demoBundle)
	placedAt := now.Add(-time.Hour)
	lockOf := func(scope events.LockScope, emergencyAllowed, removed bool) *events.Lock {
		id := events.NewID()
		sam := events.Principal{ID: "sam", Groups: []string{"security"}}
		evs := []events.Event{{Envelope: events.Envelope{ID: events.NewID(), Type: events.TypeLockPlaced, Subject: id, Time: placedAt, Actor: sam.ID},
			Payload: events.LockPlaced{Scope: scope, Reason: "laptop stolen", PlacedBy: sam, EmergencyAllowed: emergencyAllowed}}}
		if removed {
			evs = append(evs, events.Event{Envelope: events.Envelope{ID: events.NewID(), Type: events.TypeLockRemoved, Subject: id, Time: placedAt, Actor: sam.ID},
				Payload: events.LockRemoved{RemovedBy: sam}})
		}
		l, err := events.FoldLock(id, evs)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	ent, _ := d.cat.Entitlement("payments-admin")
	tests := []struct {
		name    string
		ask     ask
		lock    *events.Lock
		outcome events.Outcome // the outcome with the lock; without it the request is not denied
	}{
		{"a locked person is denied", ask{who: "alice", entitlement: "analytics-read", minutes: 60},
			lockOf(events.LockScope{Kind: events.LockUser, ID: "alice"}, false, false), events.OutcomeDeny},
		{"a locked entitlement is denied to everyone", ask{who: "frank", entitlement: "analytics-read", minutes: 60},
			lockOf(events.LockScope{Kind: events.LockEntitlement, ID: "analytics-read"}, false, false), events.OutcomeDeny},
		{"a locked target system denies its entitlements", ask{who: "alice", entitlement: "payments-admin", minutes: 60},
			lockOf(events.LockScope{Kind: events.LockTarget, ID: ent.System}, false, false), events.OutcomeDeny},
		{"a locked person's emergency is denied", ask{who: "alice", entitlement: "payments-admin", minutes: 30, emergency: true},
			lockOf(events.LockScope{Kind: events.LockUser, ID: "alice"}, false, false), events.OutcomeDeny},
		{"unless the lock allows emergencies", ask{who: "alice", entitlement: "payments-admin", minutes: 30, emergency: true},
			lockOf(events.LockScope{Kind: events.LockUser, ID: "alice"}, true, false), events.OutcomeEmergency},
		{"someone else's lock changes nothing", ask{who: "alice", entitlement: "analytics-read", minutes: 60},
			lockOf(events.LockScope{Kind: events.LockUser, ID: "bob"}, false, false), events.OutcomeAutoApproved},
		{"a removed lock changes nothing", ask{who: "alice", entitlement: "analytics-read", minutes: 60},
			lockOf(events.LockScope{Kind: events.LockUser, ID: "alice"}, false, true), events.OutcomeAutoApproved},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := d.input(tt.ask)
			free, err := engine.Evaluate(context.Background(), in)
			if err != nil {
				t.Fatal(err)
			}
			sub := events.Submitted{Requester: in.Request.Requester, Subject: in.Request.Subject, Entitlement: in.Request.Entitlement}
			in.Locks = policy.CoveringLocks([]*events.Lock{tt.lock}, sub, in.Entitlement, now)
			got, err := engine.Evaluate(context.Background(), in)
			if err != nil {
				t.Fatal(err)
			}
			if got.Decision.Outcome != tt.outcome {
				t.Fatalf("outcome %s, want %s (reasons %v)", got.Decision.Outcome, tt.outcome, got.Decision.Reasons)
			}
			covered := len(in.Locks) > 0
			if !covered && got.InputDigest != free.InputDigest {
				t.Fatalf("a lock that covers nothing changed the input's digest")
			}
			if tt.outcome == events.OutcomeDeny && !strings.Contains(strings.Join(got.Decision.Reasons, "\n"), "locked by "+tt.lock.ID()+" ") {
				t.Fatalf("reasons %v do not name lock %s", got.Decision.Reasons, tt.lock.ID())
			}
			if free.Decision.Outcome == events.OutcomeDeny {
				t.Fatalf("without the lock the request is denied already: %v", free.Decision.Reasons)
			}
		})
	}
}
