package revoker_test

import (
	"slices"
	"testing"
	"time"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/services/revoker"
)

// TestDecideReviewRevoked: which of alice's grants an access review ends, and in whose name: the owner
// who revoked one, whoever opened the campaign for one its rule revoked unanswered, nobody for one kept.
func TestDecideReviewRevoked(t *testing.T) {
	kept, revoked, unanswered, elsewhere := newGrant(t), newGrant(t), newGrant(t), newGrant(t)
	rita, bob := events.Principal{ID: "rita", Groups: []string{"security"}}, events.Principal{ID: "bob", Groups: []string{"analytics-owners"}}
	item := func(g *grant) events.CampaignItem {
		return events.CampaignItem{RequestID: g.id, Entitlement: "analytics-read", SubjectID: "alice", RequesterID: "alice",
			ExpiresAt: expiry, Owners: []string{"analytics-owners"}}
	}
	cid, deadline := events.NewID(), t0.Add(10*time.Minute)
	ev := func(at time.Time, actor string, p events.Payload) events.Event {
		return events.Event{Envelope: events.Envelope{ID: events.NewID(), Type: p.EventType(), Subject: cid, Time: at, Actor: actor}, Payload: p}
	}
	c, err := events.FoldCampaign(cid, []events.Event{
		ev(t0, rita.ID, events.CampaignOpened{Name: "analytics", Filter: events.CampaignFilter{Entitlement: "analytics-read"}, CreatedBy: rita,
			Deadline: deadline, Unanswered: events.CampaignRevoke, Items: []events.CampaignItem{item(kept), item(revoked), item(unanswered)}}),
		ev(t0.Add(time.Minute), bob.ID, events.CampaignDecided{RequestID: kept.id, Decision: events.CampaignKeep, Reviewer: bob}),
		ev(t0.Add(time.Minute), bob.ID, events.CampaignDecided{RequestID: revoked.id, Decision: events.CampaignRevokes, Reviewer: bob, Note: "moved teams"}),
		ev(deadline, "service:approval", events.CampaignClosed{RevokedUnanswered: []string{unanswered.id}}),
	})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		grant *grant
		by    string // "" when nothing is asked
	}{
		{"a grant its owner kept", kept, ""},
		{"a grant its owner revoked", revoked, "bob"},
		{"a grant unanswered at the deadline", unanswered, "rita"},
		{"a grant the campaign did not review", elsewhere, ""},
		{"a grant revoked by its owner but already being revoked", (&grant{id: revoked.id, evs: slices.Clone(revoked.evs), at: revoked.at}).
			add("alice", events.RevocationRequested{By: "alice", Reason: events.RevokeEarly}), ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.grant.request(t)
			drafts, err := revoker.DecideReviewRevoked(c)(r)
			if err != nil || (len(drafts) == 1) != (tc.by != "") {
				t.Fatalf("drafts %v, error %v; want asking by %q", drafts, err, tc.by)
			}
			if tc.by == "" {
				return
			}
			p := drafts[0].Payload.(events.RevocationRequested)
			if p.Reason != events.RevokeReviewRevoked || p.CampaignID != cid || p.By != tc.by || drafts[0].Actor != tc.by {
				t.Fatalf("requested %+v by %s", p, drafts[0].Actor)
			}
			if err := r.Apply(events.Event{Envelope: events.Envelope{ID: events.NewID(), Type: p.EventType(), Subject: r.ID(),
				Time: t0.Add(11 * time.Minute), Actor: drafts[0].Actor}, Payload: p}); err != nil || r.RevocationDue() != events.RevokeReviewRevoked {
				t.Fatalf("the request refuses the revocation: %v", err)
			}
		})
	}
}
