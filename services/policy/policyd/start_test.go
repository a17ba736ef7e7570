package policyd

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/poll"
	"github.com/grantline/grantline/pkg/topology"
)

// people is a directory the test changes: who is in which groups now.
type people struct {
	mu     sync.Mutex
	groups map[string][]string
	err    error
}

func (p *people) Groups(_ context.Context, id string) ([]string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.groups[id]), p.err
}

func (p *people) set(id string, groups ...string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.groups[id] = groups
}

func newPeople(w *world) *people {
	g := map[string][]string{}
	for id, gs := range w.groups {
		g[id] = slices.Clone(gs)
	}
	return &people{groups: g}
}

// startCheck waits for policy's check of request id at its start and returns the request then.
func (w *world) startCheck(t *testing.T, id string) *events.Request {
	t.Helper()
	var r *events.Request
	poll.Until(t, 30*time.Second, "the start check of "+id, func() bool {
		l, err := w.stores[events.Policy].Load(context.Background(), id)
		if err != nil {
			return false
		}
		r = l.Request
		return r.StartCheck() != nil
	})
	return r
}

// soon is a start a little ahead: after policy has decided, and not long to wait for.
func soon() *time.Time {
	at := time.Now().Add(1500 * time.Millisecond)
	return &at
}

// TestStartCheck: a request approved for a later start is evaluated again at that start with its
// requester's groups then. Alice, still an engineer, keeps her routine read; Alice's colleague who left
// engineers needs approvals she never got, and is denied with the reason; an approval that still
// satisfies policy's stages stands; a lock placed meanwhile denies, naming itself.
func TestStartCheck(t *testing.T) {
	w := newWorld(t)
	dir := newPeople(w)
	w.serve(t, loadEngine(t, demoBundle), func(d *Deps) { d.Groups = dir })
	approved := func(id string) {
		t.Helper()
		if pd := w.decision(t, id); pd.Outcome != events.OutcomeAutoApproved {
			t.Fatalf("decided %s %v, want auto_approved", pd.Outcome, pd.Reasons)
		}
	}

	t.Run("still eligible", func(t *testing.T) {
		start := soon()
		id := w.submit(t, ask{who: "alice", entitlement: "analytics-read", minutes: 60, start: start})
		approved(id)
		r := w.startCheck(t, id)
		c := r.StartCheck()
		if !c.Allowed || r.Status() != events.StatusApproved || !r.AllowsFulfilment() || c.GroupsFrom != events.GroupsFromDirectory ||
			!slices.Equal(c.RequesterGroups, []string{"engineers"}) {
			t.Fatalf("check %+v, status %s", c, r.Status())
		}
		l := w.load(t, id)
		last := l.Events[len(l.Events)-1]
		if last.Time.Before(*start) || last.Source != events.Policy.Source() || !strings.HasPrefix(c.InputDigest, "sha256:") {
			t.Fatalf("checked at %s by %s (start %s), digest %q", last.Time, last.Source, start, c.InputDigest)
		}
	})

	t.Run("left the group", func(t *testing.T) {
		// frank is an engineer when he asks, and no longer when his access starts.
		id := w.submit(t, ask{who: "frank", entitlement: "analytics-read", minutes: 60, start: soon()})
		approved(id)
		dir.set("frank", "payments-owners")
		r := w.startCheck(t, id)
		c := r.StartCheck()
		reasons := strings.Join(c.Reasons, "\n")
		if c.Allowed || r.Status() != events.StatusDenied || c.Outcome != events.OutcomeApprovalRequired ||
			!strings.Contains(reasons, "outside engineers") || !strings.Contains(reasons, "approvals it does not have") {
			t.Fatalf("check %+v, status %s", c, r.Status())
		}
		if slices.Contains(c.RequesterGroups, "engineers") {
			t.Fatalf("checked with groups %v, not frank's now", c.RequesterGroups)
		}
	})

	t.Run("approved by its owners", func(t *testing.T) {
		// erin, an auditor, needs analytics' owners; bob approved before the start.
		id := w.submit(t, ask{who: "erin", entitlement: "analytics-read", minutes: 60, start: soon()})
		if pd := w.decision(t, id); pd.Outcome != events.OutcomeApprovalRequired {
			t.Fatalf("decided %s", pd.Outcome)
		}
		bob := events.Principal{ID: "bob", Groups: w.groups["bob"]}
		w.append(t, events.Approval, id,
			events.Draft{Payload: events.Reviewed{Reviewer: bob, Stage: 0, Decision: events.ReviewApprove,
				RequestDigest: w.load(t, id).Request.Submitted().RequestDigest}, Actor: "bob", CausationID: "review-bob"},
			events.Draft{Payload: events.Approved{Approvers: []string{"bob"}}, CausationID: "approve"})
		r := w.startCheck(t, id)
		if c := r.StartCheck(); !c.Allowed || r.Status() != events.StatusApproved || len(c.Stages) != 1 {
			t.Fatalf("check %+v, status %s", c, r.Status())
		}
	})

	t.Run("locked meanwhile", func(t *testing.T) {
		// dave, in operations, needs analytics' owners; bob approves after security locked dave.
		id := w.submit(t, ask{who: "dave", entitlement: "analytics-read", minutes: 60, start: soon()})
		if pd := w.decision(t, id); pd.Outcome != events.OutcomeApprovalRequired {
			t.Fatalf("decided %s", pd.Outcome)
		}
		bob := events.Principal{ID: "bob", Groups: w.groups["bob"]}
		lock := events.NewID()
		if _, err := w.stores[events.Revoker].UpdateLock(context.Background(), lock, func(*events.Lock) ([]events.Draft, error) {
			return []events.Draft{{Actor: "carol", Payload: events.LockPlaced{Scope: events.LockScope{Kind: events.LockUser, ID: "dave"},
				Reason: "INC-9", PlacedBy: events.Principal{ID: "carol", Groups: []string{"security"}}}}}, nil
		}); err != nil {
			t.Fatal(err)
		}
		w.append(t, events.Approval, id,
			events.Draft{Payload: events.Reviewed{Reviewer: bob, Stage: 0, Decision: events.ReviewApprove,
				RequestDigest: w.load(t, id).Request.Submitted().RequestDigest}, Actor: "bob", CausationID: "review-bob"},
			events.Draft{Payload: events.Approved{Approvers: []string{"bob"}}, CausationID: "approve"})
		r := w.startCheck(t, id)
		if c := r.StartCheck(); c.Allowed || r.Status() != events.StatusDenied || !strings.Contains(strings.Join(c.Reasons, "\n"), "locked by "+lock) {
			t.Fatalf("check %+v, status %s", c, r.Status())
		}
	})
}

// TestStartCheckFailsClosed: when the directory cannot say who is in which group, the check is retried,
// and after the last allowed delivery it is recorded not allowed with the error: the request is denied,
// never granted on a guess.
func TestStartCheckFailsClosed(t *testing.T) {
	w := newWorld(t)
	dir := newPeople(w)
	dir.err = errors.New("directory unreadable")
	w.serve(t, loadEngine(t, demoBundle), func(d *Deps) { d.Groups = dir; d.MaxDeliveries = 3 })
	id := w.submit(t, ask{who: "alice", entitlement: "analytics-read", minutes: 60, start: soon()})
	r := w.startCheck(t, id)
	c := r.StartCheck()
	if c.Allowed || r.Status() != events.StatusDenied || c.Outcome != events.OutcomeDeny ||
		!strings.Contains(strings.Join(c.Reasons, "\n"), "directory unreadable") {
		t.Fatalf("check %+v, status %s", c, r.Status())
	}
	if n := w.deadLetters(t, topology.PolicyStart.Durable); n != 0 {
		t.Errorf("%d dead letters; the check should have settled the request", n)
	}
}

// TestStartCheckWithoutDirectory: a policy service with no directory checks with the groups recorded at
// submission, and says so.
func TestStartCheckWithoutDirectory(t *testing.T) {
	w := newWorld(t)
	w.serve(t, loadEngine(t, demoBundle), nil)
	id := w.submit(t, ask{who: "alice", entitlement: "analytics-read", minutes: 60, start: soon()})
	r := w.startCheck(t, id)
	if c := r.StartCheck(); !c.Allowed || c.GroupsFrom != events.GroupsFromSubmission || !slices.Equal(c.RequesterGroups, []string{"engineers"}) {
		t.Fatalf("check %+v", c)
	}
}
