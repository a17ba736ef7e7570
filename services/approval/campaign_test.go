package approval_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/services/approval"
)

// The campaign stories: rita (governance) reviews payments-admin, owned by payments-owners (bob,
// frank). Three grants are live: alice's, frank's own, and one bob asked for himself.
const campaignID = "01KB00000000000000000CAMP1"

var (
	rita      = events.Principal{ID: "rita", Groups: []string{"governance"}}
	admins    = []string{"governance"}
	campaignD = t0.Add(72 * time.Hour)
	alicesReq = "01KB00000000000000000000A1"
	franksReq = "01KB00000000000000000000F1"
	bobsReq   = "01KB00000000000000000000B1"
)

func campaignItem(id, holder string) events.CampaignItem {
	return events.CampaignItem{RequestID: id, Entitlement: "payments-admin", SubjectID: holder, RequesterID: holder,
		ExpiresAt: t0.Add(40 * 24 * time.Hour), Owners: []string{"payments-owners"}}
}

func campaignSpec(rule events.CampaignRule) approval.CampaignSpec {
	s := approval.CampaignSpec{Name: "payments-admin Q4", Filter: events.CampaignFilter{Entitlement: "payments-admin"},
		Deadline: campaignD, RemindAt: []time.Time{campaignD.Add(-24 * time.Hour)}, Unanswered: rule}
	if rule == events.CampaignEscalate {
		esc := campaignD.Add(24 * time.Hour)
		s.EscalateTo, s.EscalationDeadline = []string{"security"}, &esc
	}
	return s
}

var campaignItems = []events.CampaignItem{campaignItem(alicesReq, "alice"), campaignItem(franksReq, "frank"), campaignItem(bobsReq, "bob")}

// openCampaign folds the campaign rita opens at t0 under rule.
func openCampaign(t *testing.T, rule events.CampaignRule) *events.Campaign {
	t.Helper()
	drafts, err := rules.OpenCampaign(campaignID, rita, admins, campaignSpec(rule), campaignItems, t0)
	if err != nil {
		t.Fatal(err)
	}
	c := events.NewCampaign(campaignID)
	applyCampaign(t, c, t0, drafts)
	return c
}

func applyCampaign(t *testing.T, c *events.Campaign, at time.Time, drafts []events.Draft) {
	t.Helper()
	for _, d := range drafts {
		ev := envelope(d.Payload, at, d.Actor, d.CausationID)
		ev.Subject = campaignID
		if err := c.Apply(ev); err != nil {
			t.Fatalf("the campaign refused what the rules decided: %v", err)
		}
	}
}

// TestCampaignOpening: who may open an access review, and what it must say.
func TestCampaignOpening(t *testing.T) {
	cases := []struct {
		name  string
		who   events.Principal
		spec  func(*approval.CampaignSpec)
		items []events.CampaignItem
		want  error
	}{
		{"rita, in governance, opens a review of payments-admin", rita, nil, campaignItems, nil},
		{"an owner may not open one", bob, nil, campaignItems, approval.ErrNotCampaignAdmin},
		{"no active grant matches", rita, nil, nil, approval.ErrNothingToReview},
		{"a deadline already past", rita, func(s *approval.CampaignSpec) { s.Deadline = t0.Add(-time.Hour) }, campaignItems, approval.ErrInvalid},
		{"no filter at all", rita, func(s *approval.CampaignSpec) { s.Filter = events.CampaignFilter{} }, campaignItems, approval.ErrInvalid},
		{"escalation with nobody to escalate to", rita, func(s *approval.CampaignSpec) { s.Unanswered = events.CampaignEscalate }, campaignItems, approval.ErrInvalid},
		{"too many grants for one campaign", rita, nil, slices.Repeat(campaignItems[:1], events.MaxCampaignItems+1), approval.ErrInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			spec := campaignSpec(events.CampaignRevoke)
			if tc.spec != nil {
				tc.spec(&spec)
			}
			drafts, err := rules.OpenCampaign(campaignID, tc.who, admins, spec, tc.items, t0)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (len(drafts) == 1) {
				t.Fatalf("OpenCampaign = %v, %v; want %v", typesOf(drafts), err, tc.want)
			}
		})
	}
}

// TestCertificationScenarios: who may keep or revoke which grant, read as the specification.
func TestCertificationScenarios(t *testing.T) {
	before := campaignD.Add(-time.Hour)
	cases := []struct {
		name  string
		setup func(t *testing.T, c *events.Campaign)
		rule  events.CampaignRule
		cert  approval.Certification
		at    time.Time
		want  error
	}{
		{"bob, an owner, keeps alice's grant", nil, events.CampaignRevoke,
			approval.Certification{Reviewer: bob, RequestID: alicesReq, Decision: events.CampaignKeep}, before, nil},
		{"bob, an owner, revokes frank's grant", nil, events.CampaignRevoke,
			approval.Certification{Reviewer: bob, RequestID: franksReq, Decision: events.CampaignRevokes, Note: "left payments"}, before, nil},
		{"frank certifies his own grant (self-certification)", nil, events.CampaignRevoke,
			approval.Certification{Reviewer: frank, RequestID: franksReq, Decision: events.CampaignKeep}, before, approval.ErrSeparationOfDuties},
		{"frank under another spelling certifies his own grant", nil, events.CampaignRevoke,
			approval.Certification{Reviewer: as("ｆｒａｎｋ", "payments-owners"), RequestID: franksReq, Decision: events.CampaignKeep}, before, approval.ErrSeparationOfDuties},
		{"bob certifies the grant he holds", nil, events.CampaignRevoke,
			approval.Certification{Reviewer: bob, RequestID: bobsReq, Decision: events.CampaignKeep}, before, approval.ErrSeparationOfDuties},
		{"carol, outside the owners", nil, events.CampaignRevoke,
			approval.Certification{Reviewer: carol, RequestID: alicesReq, Decision: events.CampaignKeep}, before, approval.ErrNotReviewer},
		{"a grant the campaign does not review", nil, events.CampaignRevoke,
			approval.Certification{Reviewer: bob, RequestID: requestID, Decision: events.CampaignKeep}, before, approval.ErrNotFound},
		{"an unknown decision", nil, events.CampaignRevoke,
			approval.Certification{Reviewer: bob, RequestID: alicesReq, Decision: "maybe"}, before, approval.ErrInvalid},
		{"after the deadline", nil, events.CampaignRevoke,
			approval.Certification{Reviewer: bob, RequestID: alicesReq, Decision: events.CampaignKeep}, campaignD.Add(time.Second), approval.ErrNotPending},
		{"frank (an owner) changes bob's answer", func(t *testing.T, c *events.Campaign) {
			drafts, _ := rules.Certify(c, approval.Certification{Reviewer: bob, RequestID: alicesReq, Decision: events.CampaignKeep}, before)
			applyCampaign(t, c, before, drafts)
		}, events.CampaignRevoke, approval.Certification{Reviewer: frank, RequestID: alicesReq, Decision: events.CampaignRevokes}, before, approval.ErrNotPending},
		{"carol (security) decides an escalated item", func(t *testing.T, c *events.Campaign) {
			drafts, _ := approval.CampaignDue(c, campaignD)
			applyCampaign(t, c, campaignD, drafts)
		}, events.CampaignEscalate, approval.Certification{Reviewer: carol, RequestID: alicesReq, Decision: events.CampaignRevokes}, campaignD.Add(time.Hour), nil},
		{"bob decides an item escalated past the owners", func(t *testing.T, c *events.Campaign) {
			drafts, _ := approval.CampaignDue(c, campaignD)
			applyCampaign(t, c, campaignD, drafts)
		}, events.CampaignEscalate, approval.Certification{Reviewer: bob, RequestID: alicesReq, Decision: events.CampaignKeep}, campaignD.Add(time.Hour), approval.ErrNotReviewer},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := openCampaign(t, tc.rule)
			if tc.setup != nil {
				tc.setup(t, c)
			}
			drafts, err := rules.Certify(c, tc.cert, tc.at)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Certify = %v; want %v", err, tc.want)
			}
			if err == nil {
				applyCampaign(t, c, tc.at, drafts)
			}
		})
	}
}

// TestRetriedCertificationAppendsNothing: the same answer sent again (its reply lost) is no error and
// appends nothing.
func TestRetriedCertificationAppendsNothing(t *testing.T) {
	c := openCampaign(t, events.CampaignRevoke)
	keep := approval.Certification{Reviewer: bob, RequestID: alicesReq, Decision: events.CampaignKeep}
	drafts, err := rules.Certify(c, keep, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	applyCampaign(t, c, t0.Add(time.Hour), drafts)
	if again, err := rules.Certify(c, keep, t0.Add(2*time.Hour)); err != nil || len(again) != 0 {
		t.Fatalf("the same answer again: %v, %v; want nothing", typesOf(again), err)
	}
}

// TestCampaignClock: what the campaign's timer appends, and when it looks next, under each rule.
func TestCampaignClock(t *testing.T) {
	remind := campaignD.Add(-24 * time.Hour)
	t.Run("before the reminder: nothing, look at the reminder", func(t *testing.T) {
		drafts, next := approval.CampaignDue(openCampaign(t, events.CampaignRevoke), t0.Add(time.Hour))
		if len(drafts) != 0 || !next.Equal(remind) {
			t.Fatalf("got %v, next %s", typesOf(drafts), next)
		}
	})
	t.Run("at the reminder: the pending items, look at the deadline", func(t *testing.T) {
		c := openCampaign(t, events.CampaignRevoke)
		drafts, next := approval.CampaignDue(c, remind)
		if !slices.Equal(typesOf(drafts), []string{"campaign_reminded"}) || !next.Equal(campaignD) {
			t.Fatalf("got %v, next %s", typesOf(drafts), next)
		}
		applyCampaign(t, c, remind, drafts)
		if again, _ := approval.CampaignDue(c, remind.Add(time.Second)); len(again) != 0 {
			t.Fatalf("reminded twice: %v", typesOf(again))
		}
	})
	t.Run("rule revoke: at the deadline the unanswered are revoked and the campaign closes", func(t *testing.T) {
		c := openCampaign(t, events.CampaignRevoke)
		d, _ := rules.Certify(c, approval.Certification{Reviewer: bob, RequestID: alicesReq, Decision: events.CampaignKeep}, t0.Add(time.Hour))
		applyCampaign(t, c, t0.Add(time.Hour), d)
		drafts, next := approval.CampaignDue(c, campaignD)
		applyCampaign(t, c, campaignD, drafts)
		if closed := drafts[0].Payload.(events.CampaignClosed); !slices.Equal(closed.RevokedUnanswered, []string{franksReq, bobsReq}) || !next.IsZero() {
			t.Fatalf("closed %+v, next %s", closed, next)
		}
	})
	t.Run("rule escalate: escalated at the deadline, closed at the escalation deadline", func(t *testing.T) {
		c := openCampaign(t, events.CampaignEscalate)
		drafts, next := approval.CampaignDue(c, campaignD)
		applyCampaign(t, c, campaignD, drafts)
		if !slices.Equal(typesOf(drafts), []string{"campaign_escalated"}) || !next.Equal(campaignD.Add(24*time.Hour)) {
			t.Fatalf("got %v, next %s", typesOf(drafts), next)
		}
		drafts, next = approval.CampaignDue(c, next)
		applyCampaign(t, c, campaignD.Add(24*time.Hour), drafts)
		if c.Status() != events.CampaignStatusClosed || len(drafts[0].Payload.(events.CampaignClosed).RevokedUnanswered) != 3 || !next.IsZero() {
			t.Fatalf("status %s after %v", c.Status(), typesOf(drafts))
		}
	})
}

// TestCampaignItemsSelectActiveGrants: the filter keeps live grants of the entitlement held longer
// than the length; revoked, expiring and unowned grants are left out.
func TestCampaignItemsSelectActiveGrants(t *testing.T) {
	auto := events.PolicyDecided{Outcome: events.OutcomeAutoApproved, Reasons: []string{"ok"}, EffectiveDurationSeconds: 3600,
		PolicyRevision: "sha256:rev", InputDigest: "sha256:in"}
	live := fold(t, request(alice, self(alice), false), auto, granted(t0.Add(2*time.Minute)))
	revoking := fold(t, request(alice, self(alice), false), auto, granted(t0.Add(2*time.Minute)),
		events.RevocationRequested{By: "alice", Reason: events.RevokeEarly})
	owners := func(e string) ([]string, bool) { return []string{"payments-owners"}, e == "payments-admin" }
	now := t0.Add(5 * time.Minute)
	cases := []struct {
		name   string
		filter events.CampaignFilter
		reqs   []*events.Request
		want   int
	}{
		{"a live grant of the entitlement", events.CampaignFilter{Entitlement: "payments-admin"}, []*events.Request{live}, 1},
		{"another entitlement", events.CampaignFilter{Entitlement: "reporting-db-credential"}, []*events.Request{live}, 0},
		{"held 30 minutes, longer than 10", events.CampaignFilter{LongerThanSeconds: 600}, []*events.Request{live}, 1},
		{"held 30 minutes, not longer than 30 days", events.CampaignFilter{LongerThanSeconds: 30 * 86400}, []*events.Request{live}, 0},
		{"a grant being revoked", events.CampaignFilter{Entitlement: "payments-admin"}, []*events.Request{revoking}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := approval.CampaignItems(tc.reqs, tc.filter, owners, now)
			if len(got) != tc.want {
				t.Fatalf("%d items, want %d: %+v", len(got), tc.want, got)
			}
		})
	}
	if got := approval.CampaignItems([]*events.Request{live}, events.CampaignFilter{Entitlement: "payments-admin"}, owners, t0.Add(time.Hour)); len(got) != 0 {
		t.Fatalf("a grant past its expiry is reviewed: %+v", got)
	}
}
