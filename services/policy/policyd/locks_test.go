package policyd

import (
	"context"
	"strings"
	"testing"

	"github.com/grantline/grantline/pkg/events"
)

// TestLocksDenyNewRequests: security locks alice, then the analytics-read entitlement; policy denies the
// requests each lock covers from the moment it is stored, naming it, and records it in the input; a
// request no lock covers is decided as before, and a removed lock denies nothing more.
func TestLocksDenyNewRequests(t *testing.T) {
	w := newWorld(t)
	w.serve(t, loadEngine(t, demoBundle), nil)
	ctx := context.Background()
	carol := events.Principal{ID: "carol", Groups: []string{"security"}}
	place := func(scope events.LockScope) string {
		id := events.NewID()
		if _, err := w.stores[events.Revoker].UpdateLock(ctx, id, func(*events.Lock) ([]events.Draft, error) {
			return []events.Draft{{Actor: carol.ID, Payload: events.LockPlaced{Scope: scope, Reason: "INC-9", PlacedBy: carol}}}, nil
		}); err != nil {
			t.Fatal(err)
		}
		return id
	}
	denied := func(id, lock string) {
		t.Helper()
		pd := w.decision(t, id)
		if pd.Outcome != events.OutcomeDeny || !strings.Contains(strings.Join(pd.Reasons, "\n"), "locked by "+lock) ||
			!strings.Contains(string(pd.Input), lock) {
			t.Fatalf("decision %s %v, want a deny naming lock %s", pd.Outcome, pd.Reasons, lock)
		}
	}

	if pd := w.decision(t, w.submit(t, ask{who: "alice", entitlement: "analytics-read", minutes: 60})); pd.Outcome != events.OutcomeAutoApproved {
		t.Fatalf("before any lock: %s %v", pd.Outcome, pd.Reasons)
	}
	onAlice := place(events.LockScope{Kind: events.LockUser, ID: "alice"})
	denied(w.submit(t, ask{who: "alice", entitlement: "analytics-read", minutes: 60}), onAlice)
	denied(w.submit(t, ask{who: "alice", entitlement: "payments-admin", minutes: 30, emergency: true}), onAlice)
	if pd := w.decision(t, w.submit(t, ask{who: "frank", entitlement: "analytics-read", minutes: 60})); pd.Outcome != events.OutcomeAutoApproved {
		t.Fatalf("frank, whom no lock covers: %s %v", pd.Outcome, pd.Reasons)
	}
	onAnalytics := place(events.LockScope{Kind: events.LockEntitlement, ID: "analytics-read"})
	denied(w.submit(t, ask{who: "frank", entitlement: "analytics-read", minutes: 60}), onAnalytics)

	if _, err := w.stores[events.Revoker].UpdateLock(ctx, onAnalytics, func(*events.Lock) ([]events.Draft, error) {
		return []events.Draft{{Actor: "sam", Payload: events.LockRemoved{RemovedBy: events.Principal{ID: "sam"}}}}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if pd := w.decision(t, w.submit(t, ask{who: "frank", entitlement: "analytics-read", minutes: 60})); pd.Outcome != events.OutcomeAutoApproved {
		t.Fatalf("after the entitlement's lock was removed: %s %v", pd.Outcome, pd.Reasons)
	}
}
