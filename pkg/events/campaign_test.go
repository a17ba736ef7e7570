package events

import (
	"errors"
	"slices"
	"testing"
	"time"
)

// The campaign fixtures: rita (governance) reviews the grants of pg-prod-admin, owned by db-owners
// (carol). Item A is bob's grant, item B is carol's own grant, item C is dan's.
const (
	testCampaignID = "01KB00000000000000000CAMP0"
	itemA          = "01KB0000000000000000000AAA"
	itemB          = "01KB0000000000000000000BBB"
	itemC          = "01KB0000000000000000000CCC"
)

var (
	campT0   = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	deadline = campT0.Add(72 * time.Hour)
	escalate = deadline.Add(24 * time.Hour)
	rita     = Principal{ID: "rita", Groups: []string{"governance"}}
	owner    = Principal{ID: "carol", Groups: []string{"db-owners"}}
	ciso     = Principal{ID: "erin", Groups: []string{"security"}}
)

func campaignEvent(actor string, at time.Time, p Payload) Event {
	return Event{Envelope: Envelope{ID: NewID(), Type: p.EventType(), Subject: testCampaignID, Time: at, Actor: actor}, Payload: p}
}

func campaignItem(id, holder, requester string) CampaignItem {
	return CampaignItem{RequestID: id, Entitlement: "pg-prod-admin", SubjectID: holder, RequesterID: requester,
		ExpiresAt: campT0.Add(40 * 24 * time.Hour), Owners: []string{"db-owners"}}
}

// revokingCampaign reviews the three items and revokes what is unanswered at the deadline.
func revokingCampaign() CampaignOpened {
	return CampaignOpened{Name: "Q1 pg-prod-admin", Filter: CampaignFilter{Entitlement: "pg-prod-admin", LongerThanSeconds: 30 * 86400},
		CreatedBy: rita, Deadline: deadline, RemindAt: []time.Time{deadline.Add(-24 * time.Hour)}, Unanswered: CampaignRevoke,
		Items: []CampaignItem{campaignItem(itemA, "bob", "bob"), campaignItem(itemB, "carol", "carol"), campaignItem(itemC, "dan", "dan")}}
}

// escalatingCampaign is revokingCampaign whose unanswered items go to security first.
func escalatingCampaign() CampaignOpened {
	c := revokingCampaign()
	c.Unanswered, c.EscalateTo, c.EscalationDeadline = CampaignEscalate, []string{"security"}, &escalate
	return c
}

func decided(id string, d CampaignDecision, by Principal) CampaignDecided {
	return CampaignDecided{RequestID: id, Decision: d, Reviewer: by, Note: "checked"}
}

// TestCampaignRules is the access review's rule table: each row is a story of events before, the event
// offered, whether the campaign accepts it and in which status it ends. Who may open a campaign at all
// (the review admin groups) is the API's rule; these are the ones the evidence itself must keep.
func TestCampaignRules(t *testing.T) {
	before := deadline.Add(-time.Hour)
	opened := campaignEvent(rita.ID, campT0, revokingCampaign())
	escOpened := campaignEvent(rita.ID, campT0, escalatingCampaign())
	keepA := campaignEvent(owner.ID, before, decided(itemA, CampaignKeep, owner))
	revokeC := campaignEvent(owner.ID, before, decided(itemC, CampaignRevokes, owner))
	opening := func(edit func(*CampaignOpened)) Event {
		c := revokingCampaign()
		edit(&c)
		return campaignEvent(rita.ID, campT0, c)
	}
	escalated := campaignEvent("service:approval", deadline, CampaignEscalated{Items: []string{itemB, itemC}})
	tests := []struct {
		name   string
		before []Event
		offer  Event
		want   CampaignStatus
		refuse bool
	}{
		{"rita opens a review of pg-prod-admin", nil, opened, CampaignStatusOpen, false},
		{"with the rule escalate", nil, escOpened, CampaignStatusOpen, false},
		{"opened twice", []Event{opened}, opened, CampaignStatusOpen, true},
		{"a campaign without a name", nil, opening(func(c *CampaignOpened) { c.Name = "" }), CampaignStatusNone, true},
		{"a campaign over every grant (no filter)", nil, opening(func(c *CampaignOpened) { c.Filter = CampaignFilter{} }), CampaignStatusNone, true},
		{"a deadline already past", nil, opening(func(c *CampaignOpened) { c.Deadline = campT0 }), CampaignStatusNone, true},
		{"a campaign over no grant", nil, opening(func(c *CampaignOpened) { c.Items = nil }), CampaignStatusNone, true},
		{"the same grant twice", nil, opening(func(c *CampaignOpened) { c.Items = append(c.Items, c.Items[0]) }), CampaignStatusNone, true},
		{"an item outside the filter", nil, opening(func(c *CampaignOpened) { c.Items[0].Entitlement = "pg-prod-read" }), CampaignStatusNone, true},
		{"an item with nobody to certify it", nil, opening(func(c *CampaignOpened) { c.Items[0].Owners = nil }), CampaignStatusNone, true},
		{"an unknown rule", nil, opening(func(c *CampaignOpened) { c.Unanswered = "ignore" }), CampaignStatusNone, true},
		{"escalation without groups", nil, opening(func(c *CampaignOpened) { c.Unanswered, c.EscalationDeadline = CampaignEscalate, &escalate }), CampaignStatusNone, true},
		{"escalation ending before the deadline", nil, opening(func(c *CampaignOpened) {
			early := deadline.Add(-time.Minute)
			c.Unanswered, c.EscalateTo, c.EscalationDeadline = CampaignEscalate, []string{"security"}, &early
		}), CampaignStatusNone, true},
		{"a reminder after the deadline", nil, opening(func(c *CampaignOpened) { c.RemindAt = []time.Time{deadline.Add(time.Hour)} }), CampaignStatusNone, true},
		{"the actor is not who opened it", nil, campaignEvent("eve", campT0, revokingCampaign()), CampaignStatusNone, true},

		{"an owner keeps bob's grant", []Event{opened}, keepA, CampaignStatusOpen, false},
		{"an owner revokes dan's grant", []Event{opened}, revokeC, CampaignStatusOpen, false},
		{"carol certifies her own grant (self-certification)", []Event{opened}, campaignEvent(owner.ID, before, decided(itemB, CampaignKeep, owner)), CampaignStatusOpen, true},
		{"bob certifies his own grant, though in db-owners", []Event{opened},
			campaignEvent("bob", before, decided(itemA, CampaignKeep, Principal{ID: "bob", Groups: []string{"db-owners"}})), CampaignStatusOpen, true},
		{"carol certifies a grant she asked for, held by dan", []Event{opening(func(c *CampaignOpened) { c.Items[2].RequesterID = owner.ID })},
			campaignEvent(owner.ID, before, decided(itemC, CampaignKeep, owner)), CampaignStatusOpen, true},
		{"someone outside the owners", []Event{opened}, campaignEvent(ciso.ID, before, decided(itemA, CampaignKeep, ciso)), CampaignStatusOpen, true},
		{"an item decided twice", []Event{opened, keepA}, campaignEvent("dave", before, decided(itemA, CampaignRevokes, Principal{ID: "dave", Groups: []string{"db-owners"}})), CampaignStatusOpen, true},
		{"a request the campaign does not review", []Event{opened}, campaignEvent(owner.ID, before, decided(testRequestID, CampaignKeep, owner)), CampaignStatusOpen, true},
		{"an unknown decision", []Event{opened}, campaignEvent(owner.ID, before, decided(itemA, "maybe", owner)), CampaignStatusOpen, true},
		{"the actor is not the reviewer", []Event{opened}, campaignEvent("mallory", before, decided(itemA, CampaignKeep, owner)), CampaignStatusOpen, true},
		{"a decision after the deadline", []Event{opened}, campaignEvent(owner.ID, deadline.Add(time.Second), decided(itemA, CampaignKeep, owner)), CampaignStatusOpen, true},

		{"a reminder of what is pending", []Event{opened, keepA}, campaignEvent("service:approval", before, CampaignReminded{Pending: []string{itemB, itemC}}), CampaignStatusOpen, false},
		{"a reminder of a decided item", []Event{opened, keepA}, campaignEvent("service:approval", before, CampaignReminded{Pending: []string{itemA, itemB, itemC}}), CampaignStatusOpen, true},
		{"a reminder at the deadline", []Event{opened}, campaignEvent("service:approval", deadline, CampaignReminded{Pending: []string{itemA, itemB, itemC}}), CampaignStatusOpen, true},

		{"closed at the deadline, revoking what is unanswered", []Event{opened, keepA, revokeC},
			campaignEvent("service:approval", deadline, CampaignClosed{RevokedUnanswered: []string{itemB}}), CampaignStatusClosed, false},
		{"closed before the deadline", []Event{opened, keepA, revokeC},
			campaignEvent("service:approval", before, CampaignClosed{RevokedUnanswered: []string{itemB}}), CampaignStatusOpen, true},
		{"closing spares an unanswered item", []Event{opened, keepA, revokeC},
			campaignEvent("service:approval", deadline, CampaignClosed{RevokedUnanswered: []string{}}), CampaignStatusOpen, true},
		{"closing revokes an answered item", []Event{opened, keepA, revokeC},
			campaignEvent("service:approval", deadline, CampaignClosed{RevokedUnanswered: []string{itemA, itemB}}), CampaignStatusOpen, true},
		{"escalation under the rule revoke", []Event{opened, keepA}, campaignEvent("service:approval", deadline, CampaignEscalated{Items: []string{itemB, itemC}}), CampaignStatusOpen, true},

		{"escalated at the deadline", []Event{escOpened, campaignEvent(owner.ID, before, decided(itemA, CampaignKeep, owner))}, escalated, CampaignStatusEscalated, false},
		{"escalated before the deadline", []Event{escOpened, campaignEvent(owner.ID, before, decided(itemA, CampaignKeep, owner))},
			campaignEvent("service:approval", before, CampaignEscalated{Items: []string{itemB, itemC}}), CampaignStatusOpen, true},
		{"closed without escalating under the rule escalate", []Event{escOpened},
			campaignEvent("service:approval", deadline, CampaignClosed{RevokedUnanswered: []string{itemA, itemB, itemC}}), CampaignStatusOpen, true},
		{"security decides an escalated item", []Event{escOpened, keepA, escalated},
			campaignEvent(ciso.ID, deadline.Add(time.Hour), decided(itemB, CampaignRevokes, ciso)), CampaignStatusEscalated, false},
		{"an owner decides an escalated item", []Event{escOpened, keepA, escalated},
			campaignEvent("dave", deadline.Add(time.Hour), decided(itemC, CampaignKeep, Principal{ID: "dave", Groups: []string{"db-owners"}})), CampaignStatusEscalated, true},
		{"escalated items unanswered are revoked at the escalation deadline", []Event{escOpened, keepA, escalated},
			campaignEvent("service:approval", escalate, CampaignClosed{RevokedUnanswered: []string{itemB, itemC}}), CampaignStatusClosed, false},
		{"nothing after closing", []Event{opened, keepA, revokeC, campaignEvent("service:approval", deadline, CampaignClosed{RevokedUnanswered: []string{itemB}})},
			campaignEvent("service:approval", deadline.Add(time.Hour), CampaignReminded{Pending: []string{itemB}}), CampaignStatusClosed, true},
		{"a request's event is no campaign's", []Event{opened}, campaignEvent(owner.ID, before, Withdrawn{}), CampaignStatusOpen, true},
		{"a lock's event is no campaign's", nil, campaignEvent(security.ID, campT0, placed(LockScope{LockUser, lockedUser})), CampaignStatusNone, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := FoldCampaign(testCampaignID, tt.before)
			if err != nil {
				t.Fatalf("story does not fold: %v", err)
			}
			version := c.Version()
			err = c.Apply(tt.offer)
			if tt.refuse != (err != nil) {
				t.Fatalf("Apply = %v, want refused %v", err, tt.refuse)
			}
			if err != nil && !errors.Is(err, ErrRefused) {
				t.Fatalf("refusal %v is not ErrRefused", err)
			}
			if tt.refuse && c.Version() != version {
				t.Fatalf("a refused event changed the version to %d", c.Version())
			}
			if c.Status() != tt.want {
				t.Fatalf("status %q, want %q", c.Status(), tt.want)
			}
		})
	}
}

// TestCampaignItems follows the items through a campaign under the rule escalate: kept, revoked,
// escalated and then revoked unanswered; the deadline in force moves with the escalation.
func TestCampaignItems(t *testing.T) {
	before := deadline.Add(-time.Hour)
	c, err := FoldCampaign(testCampaignID, []Event{
		campaignEvent(rita.ID, campT0, escalatingCampaign()),
		campaignEvent(owner.ID, before, decided(itemA, CampaignKeep, owner)),
		campaignEvent("service:approval", deadline, CampaignEscalated{Items: []string{itemB, itemC}}),
		campaignEvent(ciso.ID, deadline.Add(time.Hour), decided(itemB, CampaignRevokes, ciso)),
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Deadline(); !got.Equal(escalate) {
		t.Fatalf("deadline in force %s, want the escalation deadline %s", got, escalate)
	}
	if got := c.Awaiting(); !slices.Equal(got, []string{itemC}) {
		t.Fatalf("awaiting %v, want [C]", got)
	}
	if err := c.Apply(campaignEvent("service:approval", escalate, CampaignClosed{RevokedUnanswered: []string{itemC}})); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]ItemState{itemA: ItemKept, itemB: ItemRevoked, itemC: ItemRevokedUnanswered} {
		if got, _ := c.State(id); got != want {
			t.Errorf("item %s is %q, want %q", id, got, want)
		}
	}
	if d, ok := c.Decision(itemB); !ok || d.Reviewer.ID != ciso.ID {
		t.Errorf("item B's decision %+v, want erin's", d)
	}
	if !c.Deadline().IsZero() || len(c.Awaiting()) != 0 {
		t.Errorf("a closed campaign awaits %v by %s", c.Awaiting(), c.Deadline())
	}
}

// TestRevocationByReview says how an access review asks for a grant's end: with reason review_revoked
// and the campaign's ID, and a campaign's ID only with that reason.
func TestRevocationByReview(t *testing.T) {
	var granted []Event
	for _, st := range stories() {
		if st.name == "granted" {
			granted = st.events
		}
	}
	at := t0.Add(2 * time.Hour)
	cases := []struct {
		name    string
		ask     RevocationRequested
		refused bool
	}{
		{"a review revokes a grant", RevocationRequested{By: owner.ID, Reason: RevokeReviewRevoked, CampaignID: testCampaignID}, false},
		{"a review's revocation that names no campaign", RevocationRequested{By: owner.ID, Reason: RevokeReviewRevoked}, true},
		{"an early revocation that names a campaign", RevocationRequested{By: "alice", Reason: RevokeEarly, CampaignID: testCampaignID}, true},
		{"a lock's revocation that names a campaign", RevocationRequested{By: "sam", Reason: RevokeLocked, LockID: testLockID, CampaignID: testCampaignID}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Fold(testRequestID, granted)
			if err != nil {
				t.Fatal(err)
			}
			err = r.Apply(event(tc.ask, at, tc.ask.By))
			if tc.refused != (err != nil) {
				t.Fatalf("Apply = %v, want refused %v", err, tc.refused)
			}
			if !tc.refused && r.RevocationDue() != RevokeReviewRevoked {
				t.Fatalf("revocation due %q, want review_revoked", r.RevocationDue())
			}
		})
	}
}
