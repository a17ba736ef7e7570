package fulfilment_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/manualtask"
	"github.com/grantline/grantline/services/fulfilment"
)

// t0 is when the scenarios' requests are submitted.
var t0 = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

// history builds a request event by event, the way the stream would hold it.
type history struct {
	id  string
	evs []events.Event
	at  time.Time
}

func newHistory(requester string, entitlement string, emergency bool) *history {
	h := &history{id: events.NewID(), at: t0}
	s := events.Submitted{Requester: events.Principal{ID: requester, Groups: []string{"engineers"}},
		Subject: events.RequestSubject{Kind: events.SubjectHuman, ID: requester}, Entitlement: entitlement,
		Justification: "INC-1", DurationSeconds: 3600, Emergency: emergency, Channel: "http"}
	s.RequestDigest = s.Digest()
	return h.add(requester, s)
}

// startingAt is alice's analytics-read request for access from start.
func startingAt(start time.Time) *history {
	h := &history{id: events.NewID(), at: t0}
	s := events.Submitted{Requester: events.Principal{ID: "alice", Groups: []string{"engineers"}},
		Subject: events.RequestSubject{Kind: events.SubjectHuman, ID: "alice"}, Entitlement: "analytics-read",
		Justification: "INC-1", DurationSeconds: 3600, StartAt: &start, Channel: "http"}
	s.RequestDigest = s.Digest()
	return h.add("alice", s)
}

func (h *history) add(actor string, p events.Payload) *history {
	h.at = h.at.Add(time.Second)
	h.evs = append(h.evs, events.Event{Envelope: events.Envelope{ID: events.NewID(), Type: p.EventType(), Subject: h.id,
		Time: h.at, Actor: actor}, Payload: p})
	return h
}

func (h *history) autoApproved() *history {
	return h.add("service:policy", events.PolicyDecided{Outcome: events.OutcomeAutoApproved, Reasons: []string{"low risk"},
		EffectiveDurationSeconds: 1800, PolicyRevision: "sha256:p", InputDigest: "sha256:i"})
}

func (h *history) approvedBy(approver string) *history {
	deadline := t0.Add(time.Hour)
	h.add("service:policy", events.PolicyDecided{Outcome: events.OutcomeApprovalRequired, Reasons: []string{"high risk"},
		Stages: []events.Stage{{Name: "owners", Groups: []string{"operations"}, MinApprovals: 1}}, EffectiveDurationSeconds: 1800,
		ApprovalDeadline: &deadline, PolicyRevision: "sha256:p", InputDigest: "sha256:i"})
	digest := h.evs[0].Payload.(events.Submitted).RequestDigest
	h.add(approver, events.Reviewed{Reviewer: events.Principal{ID: approver, Groups: []string{"operations"}}, Stage: 0,
		Decision: events.ReviewApprove, RequestDigest: digest})
	return h.add("service:approval", events.Approved{Approvers: []string{approver}})
}

// checkedAtStart records policy's check at the request's start: still allowed (auto_approved), or not
// (the requester left engineers, and analytics' owners never approved).
func (h *history) checkedAtStart(allowed bool) *history {
	h.at = *h.evs[0].Payload.(events.Submitted).StartAt
	c := events.StartChecked{Allowed: true, Outcome: events.OutcomeAutoApproved, Reasons: []string{"low risk"},
		RequesterGroups: []string{"engineers"}, GroupsFrom: events.GroupsFromDirectory, PolicyRevision: "sha256:p", InputDigest: "sha256:i"}
	if !allowed {
		c = events.StartChecked{Outcome: events.OutcomeApprovalRequired, Reasons: []string{"outside engineers"},
			Stages:          []events.Stage{{Name: "owners", Groups: []string{"analytics-owners"}, MinApprovals: 1}},
			RequesterGroups: []string{}, GroupsFrom: events.GroupsFromDirectory, PolicyRevision: "sha256:p", InputDigest: "sha256:i"}
	}
	return h.add("service:policy", c)
}

func (h *history) task(purpose events.TaskPurpose) *history {
	return h.add(fulfilment.Fulfiller, events.TaskOpened{TaskID: manualtask.ID(h.id, purpose), Purpose: purpose,
		FulfillerGroups: []string{"operations"}, DueAt: h.at.Add(4 * time.Hour)})
}

func (h *history) granted() *history {
	return h.add(fulfilment.Fulfiller, events.Granted{Connector: "postgres", TargetRef: "role x", Fulfiller: fulfilment.Fulfiller,
		Observed: events.Observed{Present: true}, ExpiresAt: h.at.Add(30 * time.Minute)})
}

func (h *history) request(t *testing.T) *events.Request {
	t.Helper()
	r, err := events.Fold(h.id, h.evs)
	if err != nil {
		t.Fatalf("the scenario's history does not fold: %v", err)
	}
	return r
}

// TestNext is what fulfilment does for a request, by its state and connector.
func TestNext(t *testing.T) {
	cases := []struct {
		name      string
		history   func() *history
		connector string
		want      fulfilment.Action
	}{
		{"an auto-approved postgres request is granted through the connector",
			func() *history { return newHistory("alice", "analytics-read", false).autoApproved() }, "postgres", fulfilment.Grant},
		{"an approved webhook request is granted through the connector",
			func() *history { return newHistory("alice", "vpn", false).approvedBy("bob") }, "webhook", fulfilment.Grant},
		{"an approved manual request gets a grant task",
			func() *history { return newHistory("alice", "mainframe-operator", false).approvedBy("bob") }, "manual", fulfilment.OpenGrantTask},
		{"a manual request whose task is open needs nothing more",
			func() *history {
				return newHistory("alice", "mainframe-operator", false).approvedBy("bob").task(events.TaskGrant)
			}, "manual", fulfilment.Nothing},
		{"a granted request is not granted again",
			func() *history { return newHistory("alice", "analytics-read", false).autoApproved().granted() }, "postgres", fulfilment.Nothing},
		{"a request withdrawn after approval is not granted",
			func() *history {
				return newHistory("alice", "analytics-read", false).autoApproved().add("alice", events.Withdrawn{Reason: "not needed"})
			}, "postgres", fulfilment.Nothing},
		{"a request still awaiting policy is not granted", func() *history { return newHistory("alice", "analytics-read", false) }, "postgres", fulfilment.Nothing},
		{"an approved request for a later start waits for policy's check at the start", func() *history {
			return startingAt(t0.Add(30 * time.Minute)).autoApproved()
		}, "postgres", fulfilment.Nothing},
		{"a scheduled request still allowed at its start is granted", func() *history {
			return startingAt(t0.Add(30 * time.Minute)).autoApproved().checkedAtStart(true)
		}, "postgres", fulfilment.Grant},
		{"a scheduled manual request still allowed at its start gets a grant task", func() *history {
			return startingAt(t0.Add(30 * time.Minute)).autoApproved().checkedAtStart(true)
		}, "manual", fulfilment.OpenGrantTask},
		{"a scheduled request no longer allowed at its start is not granted", func() *history {
			return startingAt(t0.Add(30 * time.Minute)).autoApproved().checkedAtStart(false)
		}, "postgres", fulfilment.Nothing},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := fulfilment.Next(tc.history().request(t), tc.connector); got != tc.want {
				t.Fatalf("%s, want %s", got, tc.want)
			}
		})
	}
}

// TestTriggers: only an approval or a decision that allows the request outright leads to fulfilment.
func TestTriggers(t *testing.T) {
	cases := []struct {
		name string
		p    events.Payload
		want bool
	}{
		{"approved", events.Approved{Approvers: []string{"bob"}}, true},
		{"auto_approved", events.PolicyDecided{Outcome: events.OutcomeAutoApproved}, true},
		{"emergency", events.PolicyDecided{Outcome: events.OutcomeEmergency}, true},
		{"approval_required waits for approval", events.PolicyDecided{Outcome: events.OutcomeApprovalRequired}, false},
		{"deny", events.PolicyDecided{Outcome: events.OutcomeDeny}, false},
		{"still allowed at the start", events.StartChecked{Allowed: true}, true},
		{"no longer allowed at the start", events.StartChecked{Allowed: false}, false},
		{"another event", events.Withdrawn{}, false},
	}
	for _, tc := range cases {
		if got := fulfilment.Triggers(events.Event{Envelope: events.Envelope{Type: tc.p.EventType()}, Payload: tc.p}); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestCompletingAGrantTask is separation of duties for manual fulfilment: who may complete the grant
// task of alice's request approved by bob, with what evidence.
func TestCompletingAGrantTask(t *testing.T) {
	cases := []struct {
		name     string
		person   string
		groups   []string
		evidence string
		want     error
	}{
		{"an operator who neither asked nor approved", "dave", []string{"operations"}, "profile OPER added, CHG-12", nil},
		{"someone outside the fulfiller groups", "erin", []string{"auditors"}, "done", manualtask.ErrNotFulfiller},
		{"the requester, even in the fulfiller groups", "alice", []string{"operations"}, "done", manualtask.ErrNotFulfiller},
		{"the approver, even in the fulfiller groups", "bob", []string{"operations"}, "done", manualtask.ErrNotFulfiller},
		{"an operator without evidence", "dave", []string{"operations"}, "", manualtask.ErrInvalidCompletion},
		{"an operator with a novel as evidence", "dave", []string{"operations"}, strings.Repeat("x", 5000), manualtask.ErrInvalidCompletion},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHistory("alice", "mainframe-operator", false).approvedBy("bob").task(events.TaskGrant)
			r := h.request(t)
			c := manualtask.Completion{TaskID: manualtask.ID(h.id, events.TaskGrant), Person: tc.person, Groups: tc.groups, Evidence: tc.evidence}
			now := h.at.Add(time.Minute)
			drafts, err := fulfilment.DecideCompleteGrant(c, now)(r)
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			if tc.want != nil {
				return
			}
			g := drafts[0].Payload.(events.Granted)
			if g.Fulfiller != tc.person || g.TaskID != c.TaskID || !g.Observed.Present || g.Observed.Detail["evidence"] != tc.evidence ||
				!g.ExpiresAt.Equal(now.Add(30*time.Minute)) || drafts[0].Actor != tc.person {
				t.Fatalf("granted %+v by %s", g, drafts[0].Actor)
			}
			// The aggregate agrees: the completion is a legal grant.
			if err := r.Apply(events.Event{Envelope: events.Envelope{ID: events.NewID(), Type: events.TypeGranted, Subject: h.id,
				Time: now, Actor: tc.person, CausationID: drafts[0].CausationID}, Payload: g}); err != nil {
				t.Fatalf("the aggregate refuses the completion: %v", err)
			}
			if again, err := fulfilment.DecideCompleteGrant(c, now)(r); err != nil || len(again) != 0 {
				t.Fatalf("completing twice: %v %v, want nothing the second time", again, err)
			}
		})
	}
}

func TestDecideGranted(t *testing.T) {
	rec := fulfilment.Recorded{Connector: "postgres", TargetRef: "role r", Observed: events.Observed{Present: true}, ExpiresAt: t0.Add(time.Hour)}
	cases := []struct {
		name    string
		history func() *history
		rec     fulfilment.Recorded
		drafts  int
		err     error
	}{
		{"an approved request records the grant", func() *history { return newHistory("alice", "a", false).autoApproved() }, rec, 1, nil},
		{"a granted request records nothing more", func() *history { return newHistory("alice", "a", false).autoApproved().granted() }, rec, 0, nil},
		{"a withdrawn request says the grant must be undone",
			func() *history {
				return newHistory("alice", "a", false).autoApproved().add("alice", events.Withdrawn{})
			}, rec, 0, fulfilment.ErrNotAllowed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			drafts, err := fulfilment.DecideGranted(tc.rec, "cause")(tc.history().request(t))
			if !errors.Is(err, tc.err) || len(drafts) != tc.drafts {
				t.Fatalf("%d drafts, error %v; want %d, %v", len(drafts), err, tc.drafts, tc.err)
			}
		})
	}
}

func TestFingerprintHidesTheSecret(t *testing.T) {
	fp := fulfilment.Fingerprint("s3cret-password")
	if !strings.HasPrefix(fp, "sha256:") || len(fp) != len("sha256:")+16 || strings.Contains(fp, "s3cret") {
		t.Fatalf("fingerprint %q", fp)
	}
	if fp == fulfilment.Fingerprint("s3cret-passwore") {
		t.Fatal("two secrets share a fingerprint")
	}
}
