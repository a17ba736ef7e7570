package revoker_test

import (
	"errors"
	"testing"
	"time"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/manualtask"
	"github.com/grantline/grantline/services/revoker"
)

var t0 = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

// fulfilment is the actor of the events fulfilment appends on its own.
const fulfilment = "service:fulfilment"

// grant is alice's analytics-read request, granted at t0 for 30 minutes, with later events added.
type grant struct {
	id  string
	evs []events.Event
	at  time.Time
}

// submitted starts alice's request for entitlement, for 30 minutes, submitted at at.
func submitted(entitlement string, at time.Time) (*grant, events.Submitted) {
	g := &grant{id: events.NewID(), at: at}
	s := events.Submitted{Requester: events.Principal{ID: "alice", Groups: []string{"engineers"}},
		Subject: events.RequestSubject{Kind: events.SubjectHuman, ID: "alice"}, Entitlement: entitlement,
		Justification: "report", DurationSeconds: 1800, Channel: "http"}
	s.RequestDigest = s.Digest()
	g.add("alice", s)
	return g, s
}

func newGrant(t *testing.T) *grant {
	g, _ := submitted("analytics-read", t0.Add(-time.Minute))
	g.add("service:policy", events.PolicyDecided{Outcome: events.OutcomeAutoApproved, Reasons: []string{"low"},
		EffectiveDurationSeconds: 1800, PolicyRevision: "sha256:p", InputDigest: "sha256:i"})
	g.at = t0
	return g.add(fulfilment, events.Granted{Connector: "postgres", TargetRef: "role", Fulfiller: fulfilment,
		Observed: events.Observed{Present: true}, ExpiresAt: t0.Add(30 * time.Minute)})
}

func (g *grant) add(actor string, p events.Payload) *grant {
	g.evs = append(g.evs, events.Event{Envelope: events.Envelope{ID: events.NewID(), Type: p.EventType(), Subject: g.id,
		Time: g.at, Actor: actor}, Payload: p})
	g.at = g.at.Add(time.Second)
	return g
}

func (g *grant) addAt(at time.Time, actor string, p events.Payload) *grant {
	g.at = at
	return g.add(actor, p)
}

func (g *grant) request(t *testing.T) *events.Request {
	t.Helper()
	r, err := events.Fold(g.id, g.evs)
	if err != nil {
		t.Fatalf("the scenario does not fold: %v", err)
	}
	return r
}

var expiry = t0.Add(30 * time.Minute)

func TestExpiry(t *testing.T) {
	cases := []struct {
		name    string
		history func(*testing.T) *grant
		now     time.Time
		expired bool
		early   bool
	}{
		{"a live grant at its expiry expires", newGrant, expiry, true, false},
		{"a live grant an hour late still expires", newGrant, expiry.Add(time.Hour), true, false},
		{"a timer a little early waits for the expiry", newGrant, expiry.Add(-400 * time.Millisecond), false, true},
		{"a grant revoked early ignores its timer", func(t *testing.T) *grant {
			return newGrant(t).add("alice", events.RevocationRequested{By: "alice", Reason: events.RevokeEarly})
		}, expiry, false, false},
		{"a grant that expired already ignores a repeated timer", func(t *testing.T) *grant {
			return newGrant(t).addAt(expiry, revoker.Revoker, events.Expired{ExpiresAt: expiry})
		}, expiry.Add(time.Second), false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := tc.history(t)
			drafts, err := revoker.DecideExpire(tc.now)(g.request(t))
			var early *revoker.TooEarlyError
			if errors.As(err, &early) != tc.early || (!tc.early && err != nil) {
				t.Fatalf("error %v", err)
			}
			if (len(drafts) == 1) != tc.expired {
				t.Fatalf("%d drafts, want expired: %v", len(drafts), tc.expired)
			}
			if tc.expired && (!drafts[0].Payload.(events.Expired).ExpiresAt.Equal(expiry) || drafts[0].CausationID != "expiry:"+g.id) {
				t.Fatalf("expired %+v", drafts[0])
			}
		})
	}
}

// TestRevokedAtExpiry: a grant revoked at its expiry is recorded in one event when nothing else is
// under way; a failed first attempt's expired changes nothing about it; an early revocation records its
// own.
func TestRevokedAtExpiry(t *testing.T) {
	absent := events.Observed{Present: false, Detail: map[string]string{"grant_role": "gone"}}
	cases := []struct {
		name     string
		history  func(*testing.T) *grant
		now      time.Time
		observed events.Observed
		revoked  bool
		err      error
	}{
		{"a live grant revoked at its expiry", newGrant, expiry, absent, true, nil},
		{"a live grant revoked a minute late", newGrant, expiry.Add(time.Minute), absent, true, nil},
		{"a grant whose first attempt failed", func(t *testing.T) *grant {
			return newGrant(t).addAt(expiry, revoker.Revoker, events.Expired{ExpiresAt: expiry})
		}, expiry.Add(time.Minute), absent, true, nil},
		{"a grant revoked early meanwhile", func(t *testing.T) *grant {
			return newGrant(t).add("alice", events.RevocationRequested{By: "alice", Reason: events.RevokeEarly})
		}, expiry, absent, false, nil},
		{"a grant revoked already", func(t *testing.T) *grant {
			return newGrant(t).addAt(expiry, revoker.Revoker, events.Revoked{Reason: events.RevokeExpired, Observed: absent})
		}, expiry.Add(time.Second), absent, false, nil},
		{"the target still shows the access", newGrant, expiry, events.Observed{Present: true}, false, revoker.ErrStillPresent},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			drafts, err := revoker.DecideRevokedAtExpiry(tc.observed, false, tc.now)(tc.history(t).request(t))
			if !errors.Is(err, tc.err) {
				t.Fatalf("error %v, want %v", err, tc.err)
			}
			if (len(drafts) == 1) != tc.revoked {
				t.Fatalf("%d drafts, want revoked: %v", len(drafts), tc.revoked)
			}
			if tc.revoked {
				p := drafts[0].Payload.(events.Revoked)
				if p.Reason != events.RevokeExpired || p.Observed.Detail["grant_role"] != "gone" || drafts[0].CausationID != "revoked" {
					t.Fatalf("revoked %+v caused by %s", p, drafts[0].CausationID)
				}
			}
		})
	}
	var early *revoker.TooEarlyError
	if _, err := revoker.DecideRevokedAtExpiry(absent, false, expiry.Add(-time.Second))(newGrant(t).request(t)); !errors.As(err, &early) || !early.Until.Equal(expiry) {
		t.Fatalf("a second before the expiry: %v", err)
	}
}

// TestExpireFailed: a failed first attempt at an expiry records expired; revocation_failed with it only
// when the policy says the failure is due already.
func TestExpireFailed(t *testing.T) {
	policy := revoker.FailurePolicy{Budget: 3, Every: time.Hour, SLO: 30 * time.Second}
	f := revoker.Failure{Attempts: 1, Class: "target_unavailable", Message: "down", OverdueSince: expiry}
	cases := []struct {
		name  string
		now   time.Time
		types []events.Type
	}{
		{"at the expiry: expired only, the retries go on quietly", expiry, []events.Type{events.TypeExpired}},
		{"past the SLO already: recorded overdue at once", expiry.Add(time.Minute), []events.Type{events.TypeExpired, events.TypeRevocationFailed}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			drafts, err := revoker.DecideExpireFailed(policy, f, tc.now)(newGrant(t).request(t))
			if err != nil || len(drafts) != len(tc.types) {
				t.Fatalf("%d drafts, %v; want %v", len(drafts), err, tc.types)
			}
			for i, d := range drafts {
				if d.Payload.EventType() != tc.types[i] {
					t.Fatalf("draft %d is %s, want %s", i, d.Payload.EventType(), tc.types[i])
				}
			}
		})
	}
}

// TestWhoMayRevokeEarly: the requester, the entitlement's owners and the admin groups; nobody else.
func TestWhoMayRevokeEarly(t *testing.T) {
	owners, admins := []string{"analytics-owners"}, []string{"security"}
	cases := []struct {
		name   string
		caller revoker.Caller
		ok     bool
	}{
		{"the requester", revoker.Caller{ID: "alice", Groups: []string{"engineers"}}, true},
		{"an owner of the entitlement", revoker.Caller{ID: "bob", Groups: []string{"analytics-owners"}}, true},
		{"an administrator", revoker.Caller{ID: "carol", Groups: []string{"security"}}, true},
		{"an operator", revoker.Caller{ID: "dave", Groups: []string{"operations"}}, false},
		{"an auditor", revoker.Caller{ID: "erin", Groups: []string{"auditors"}}, false},
		{"an owner of another entitlement", revoker.Caller{ID: "frank", Groups: []string{"payments-owners"}}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			drafts, err := revoker.DecideRequest(tc.caller, "done early", owners, admins)(newGrant(t).request(t))
			if tc.ok != (err == nil) || (!tc.ok && !errors.Is(err, revoker.ErrForbidden)) {
				t.Fatalf("error %v", err)
			}
			if tc.ok {
				p := drafts[0].Payload.(events.RevocationRequested)
				if p.By != tc.caller.ID || p.Reason != events.RevokeEarly || drafts[0].Actor != tc.caller.ID {
					t.Fatalf("requested %+v by %s", p, drafts[0].Actor)
				}
			}
		})
	}
	// Asking again once the revocation is under way is answered the same, with nothing appended.
	g := newGrant(t).add("alice", events.RevocationRequested{By: "alice", Reason: events.RevokeEarly})
	if drafts, err := revoker.DecideRequest(revoker.Caller{ID: "alice"}, "again", owners, admins)(g.request(t)); err != nil || len(drafts) != 0 {
		t.Fatalf("asking twice: %v %v", drafts, err)
	}
}

// TestFailureReports: a failing revocation is recorded after the budget, then at most every period.
func TestFailureReports(t *testing.T) {
	p := revoker.FailurePolicy{Budget: 3, Every: 5 * time.Minute, SLO: 30 * time.Second}
	now := t0.Add(time.Hour)
	cases := []struct {
		name     string
		attempts int
		overdue  time.Duration // how long the revocation has been due at now
		last     time.Time
		due      bool
	}{
		{"the first failures are retried quietly", 2, 10 * time.Second, time.Time{}, false},
		{"the budget spent, the failure is recorded", 3, 10 * time.Second, time.Time{}, true},
		{"one slow attempt, but overdue by the SLO: recorded by the clock", 1, 30 * time.Second, time.Time{}, true},
		{"recorded a minute ago: not again yet", 7, time.Hour, now.Add(-time.Minute), false},
		{"recorded five minutes ago: again", 12, time.Hour, now.Add(-5 * time.Minute), true},
	}
	for _, tc := range cases {
		f := revoker.Failure{Attempts: tc.attempts, OverdueSince: now.Add(-tc.overdue), LastReport: tc.last}
		if got := p.Due(f, now); got != tc.due {
			t.Errorf("%s: %v", tc.name, got)
		}
	}
	if at, ok := p.Unreported(revoker.Failure{Attempts: 1, OverdueSince: now.Add(-10 * time.Second)}, now); !ok || !at.Equal(now.Add(20*time.Second)) {
		t.Errorf("a failing revocation due 10s ago must be recorded 20s from now: %v %v", at, ok)
	}
	g := newGrant(t).addAt(expiry, revoker.Revoker, events.Expired{ExpiresAt: expiry})
	r := g.request(t)
	f := revoker.Failure{Attempts: 3, Class: "target_unavailable", Message: "refused", OverdueSince: revoker.OverdueSince(r, g.evs)}
	drafts, err := revoker.DecideFailed(p, f, now)(r)
	if err != nil || len(drafts) != 1 {
		t.Fatalf("%v %v", drafts, err)
	}
	if rf := drafts[0].Payload.(events.RevocationFailed); !rf.OverdueSince.Equal(expiry) || rf.Attempts != 3 {
		t.Fatalf("recorded %+v, want overdue since the expiry", rf)
	}
}

func TestOverdueSince(t *testing.T) {
	requested := t0.Add(10 * time.Minute)
	cases := []struct {
		name string
		g    func(*testing.T) *grant
		want time.Time
	}{
		{"nothing due", newGrant, time.Time{}},
		{"expired: since the expiry", func(t *testing.T) *grant {
			return newGrant(t).addAt(expiry.Add(time.Minute), revoker.Revoker, events.Expired{ExpiresAt: expiry})
		}, expiry},
		{"revoked early: since it was asked", func(t *testing.T) *grant {
			return newGrant(t).addAt(requested, "alice", events.RevocationRequested{By: "alice", Reason: events.RevokeEarly})
		}, requested},
	}
	for _, tc := range cases {
		g := tc.g(t)
		if got := revoker.OverdueSince(g.request(t), g.evs); !got.Equal(tc.want) {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}

func TestDecideRevoked(t *testing.T) {
	absent := events.Observed{Present: false, Detail: map[string]string{"role": "analytics_read"}}
	due := func(t *testing.T) *grant {
		return newGrant(t).addAt(expiry, revoker.Revoker, events.Expired{ExpiresAt: expiry})
	}
	cases := []struct {
		name   string
		g      func(*testing.T) *grant
		obs    events.Observed
		drafts int
		err    error
	}{
		{"an expired grant observed gone is revoked", due, absent, 1, nil},
		{"a grant the target still shows is not", due, events.Observed{Present: true}, 0, revoker.ErrStillPresent},
		{"a live grant with nothing due is left alone", newGrant, absent, 0, nil},
	}
	for _, tc := range cases {
		drafts, err := revoker.DecideRevoked(tc.obs, false)(tc.g(t).request(t))
		if !errors.Is(err, tc.err) || len(drafts) != tc.drafts {
			t.Errorf("%s: %d drafts, %v", tc.name, len(drafts), err)
			continue
		}
		if tc.drafts == 1 && drafts[0].Payload.(events.Revoked).Reason != events.RevokeExpired {
			t.Errorf("%s: %+v", tc.name, drafts[0].Payload)
		}
	}
}

// manualGrant is alice's mainframe-operator request, approved by bob, granted at t0 by dave of
// operations through a grant task, and expired, with its revoke task opened for operations.
func manualGrant(t *testing.T) *grant {
	g, s := submitted("mainframe-operator", t0.Add(-time.Hour))
	deadline := t0
	g.add("service:policy", events.PolicyDecided{Outcome: events.OutcomeApprovalRequired, Reasons: []string{"high"},
		Stages: []events.Stage{{Name: "security", Groups: []string{"security"}, MinApprovals: 1}}, EffectiveDurationSeconds: 1800,
		ApprovalDeadline: &deadline, PolicyRevision: "sha256:p", InputDigest: "sha256:i"})
	g.add("bob", events.Reviewed{Reviewer: events.Principal{ID: "bob", Groups: []string{"security"}}, Stage: 0,
		Decision: events.ReviewApprove, RequestDigest: s.RequestDigest})
	g.add("service:approval", events.Approved{Approvers: []string{"bob"}})
	grantTask := manualtask.ID(g.id, events.TaskGrant)
	g.add(fulfilment, events.TaskOpened{TaskID: grantTask, Purpose: events.TaskGrant, FulfillerGroups: []string{"operations"}, DueAt: t0})
	g.at = t0
	g.add("dave", events.Granted{Connector: manualtask.Connector, TargetRef: "mainframe-operator", Fulfiller: "dave", TaskID: grantTask,
		Observed: events.Observed{Present: true, Detail: map[string]string{"evidence": "profile added"}}, ExpiresAt: expiry})
	g.addAt(expiry, revoker.Revoker, events.Expired{ExpiresAt: expiry})
	return g.add(fulfilment, events.TaskOpened{TaskID: manualtask.ID(g.id, events.TaskRevoke), Purpose: events.TaskRevoke,
		FulfillerGroups: []string{"operations"}, DueAt: expiry.Add(4 * time.Hour)})
}

// TestCompletingARevokeTask is separation of duties for manual revocation, as for a grant task: who
// may complete the revoke task of alice's expired grant, approved by bob and carried out by dave.
func TestCompletingARevokeTask(t *testing.T) {
	operations := []string{"operations"}
	cases := []struct {
		name     string
		person   string
		groups   []string
		task     events.TaskPurpose
		evidence string
		want     error
	}{
		{"an operator who neither asked nor approved", "olive", operations, events.TaskRevoke, "profile removed, CHG-13", nil},
		{"the operator who carried out the grant", "dave", operations, events.TaskRevoke, "profile removed, CHG-13", nil},
		{"someone outside the fulfiller groups", "erin", []string{"auditors"}, events.TaskRevoke, "done", manualtask.ErrNotFulfiller},
		{"the requester, even in the fulfiller groups", "alice", operations, events.TaskRevoke, "done", manualtask.ErrNotFulfiller},
		{"the approver, even in the fulfiller groups", "bob", operations, events.TaskRevoke, "done", manualtask.ErrNotFulfiller},
		{"an operator without evidence", "olive", operations, events.TaskRevoke, "", manualtask.ErrInvalidCompletion},
		{"an operator naming the grant task", "olive", operations, events.TaskGrant, "done", manualtask.ErrNotOpen},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := manualGrant(t)
			r := g.request(t)
			c := manualtask.Completion{TaskID: manualtask.ID(g.id, tc.task), Person: tc.person, Groups: tc.groups, Evidence: tc.evidence}
			drafts, err := revoker.DecideCompleteRevoke(c)(r)
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			if tc.want != nil {
				return
			}
			rv := drafts[0].Payload.(events.Revoked)
			if rv.Reason != events.RevokeExpired || rv.Observed.Present || rv.Observed.Detail["completed_by"] != tc.person ||
				rv.Observed.Detail["evidence"] != tc.evidence || drafts[0].Actor != tc.person {
				t.Fatalf("revoked %+v by %s", rv, drafts[0].Actor)
			}
			// The aggregate agrees: the completion is a legal revocation.
			if err := r.Apply(events.Event{Envelope: events.Envelope{ID: events.NewID(), Type: events.TypeRevoked, Subject: g.id,
				Time: g.at, Actor: tc.person, CausationID: drafts[0].CausationID}, Payload: rv}); err != nil {
				t.Fatalf("the aggregate refuses the completion: %v", err)
			}
			if again, err := revoker.DecideCompleteRevoke(c)(r); err != nil || len(again) != 0 {
				t.Fatalf("completing twice: %v %v, want nothing the second time", again, err)
			}
		})
	}
	t.Run("before the revocation is due", func(t *testing.T) {
		g := manualGrant(t)
		g.evs = g.evs[:len(g.evs)-2] // neither expired nor a revoke task yet
		c := manualtask.Completion{TaskID: manualtask.ID(g.id, events.TaskRevoke), Person: "olive", Groups: operations, Evidence: "early"}
		if _, err := revoker.DecideCompleteRevoke(c)(g.request(t)); !errors.Is(err, manualtask.ErrNotOpen) {
			t.Fatalf("error %v, want %v", err, manualtask.ErrNotOpen)
		}
	})
}
