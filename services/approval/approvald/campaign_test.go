package approvald_test

import (
	"encoding/json/v2"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/poll"
	"github.com/grantline/grantline/services/approval/httpapi"
)

// liveGrant records, as policy and fulfilment, requester's payments-admin request auto-approved and
// granted: a live grant an access review can select.
func (w *world) liveGrant(t testing.TB, requester events.Principal) string {
	t.Helper()
	id := w.submit(t, requester, "payments-admin", false)
	w.append(t, events.Policy, id, events.Draft{Payload: events.PolicyDecided{Outcome: events.OutcomeAutoApproved, Reasons: []string{"ok"},
		EffectiveDurationSeconds: 3600, PolicyRevision: "sha256:rev", InputDigest: "sha256:in"}, CausationID: "decide-" + id})
	w.grant(t, id)
	return id
}

func (w *world) campaign(t testing.TB, user, id string) httpapi.CampaignView {
	t.Helper()
	status, body := w.call(t, "GET", "/v1/campaigns/"+id, user, "")
	if status != http.StatusOK {
		t.Fatalf("GET campaign as %s: %d %s", user, status, body)
	}
	var v httpapi.CampaignView
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func itemState(v httpapi.CampaignView, requestID string) events.ItemState {
	for _, it := range v.Items {
		if it.RequestID == requestID {
			return it.State
		}
	}
	return ""
}

// TestCampaignOverHTTP runs an access review of payments-admin through the API on real NATS: carol
// (security) opens it over the live grants of alice, frank and dave; frank, an owner, may not certify
// his own grant; bob keeps alice's and revokes frank's; nobody answers for dave's, so at the deadline
// the campaign's clock closes the campaign and revokes it by rule. Owners see the campaign, others do
// not; the evidence holds every step.
func TestCampaignOverHTTP(t *testing.T) {
	w := newWorld(t)
	alices, franks, daves := w.liveGrant(t, alice), w.liveGrant(t, frank), w.liveGrant(t, dave)
	other := w.submit(t, alice, "analytics-read", false) // not granted: not reviewed

	deadline := time.Now().Add(6 * time.Second).UTC()
	open := fmt.Sprintf(`{"name":"payments-admin review","filter":{"entitlement":"payments-admin"},"deadline":%q,"unanswered":"revoke"}`,
		deadline.Format(time.RFC3339Nano))
	if status, body := w.call(t, "POST", "/v1/campaigns", "bob", open); status != http.StatusForbidden || problem(t, body) != "not-a-campaign-admin" {
		t.Fatalf("bob (an owner) opening a campaign: %d %s", status, body)
	}
	status, body := w.call(t, "POST", "/v1/campaigns", "carol", open)
	if status != http.StatusCreated {
		t.Fatalf("carol opening the campaign: %d %s", status, body)
	}
	var opened httpapi.CampaignView
	if err := json.Unmarshal(body, &opened); err != nil {
		t.Fatal(err)
	}
	var reviewed []string
	for _, it := range opened.Items {
		reviewed = append(reviewed, it.RequestID)
	}
	slices.Sort(reviewed)
	want := []string{alices, franks, daves}
	slices.Sort(want)
	if !slices.Equal(reviewed, want) || slices.Contains(reviewed, other) || opened.Awaiting != 3 {
		t.Fatalf("the campaign reviews %v (awaiting %d), want the three live grants %v", reviewed, opened.Awaiting, want)
	}
	decisions := "/v1/campaigns/" + opened.ID + "/decisions"
	steps := []struct {
		name, user, body string
		status           int
		problem          string
	}{
		{"frank certifies his own grant", "frank", fmt.Sprintf(`{"request_id":%q,"decision":"keep"}`, franks), http.StatusForbidden, "separation-of-duties"},
		{"alice certifies her own grant (not an owner either)", "alice", fmt.Sprintf(`{"request_id":%q,"decision":"keep"}`, alices), http.StatusForbidden, "separation-of-duties"},
		{"erin (auditors) is no owner", "erin", fmt.Sprintf(`{"request_id":%q,"decision":"keep"}`, alices), http.StatusForbidden, "not-a-reviewer"},
		{"bob keeps alice's grant", "bob", fmt.Sprintf(`{"request_id":%q,"decision":"keep","note":"still on call"}`, alices), http.StatusCreated, ""},
		{"bob revokes frank's grant", "bob", fmt.Sprintf(`{"request_id":%q,"decision":"revoke","note":"moved teams"}`, franks), http.StatusCreated, ""},
		{"frank overrides bob on alice's grant", "frank", fmt.Sprintf(`{"request_id":%q,"decision":"revoke"}`, alices), http.StatusConflict, "not-pending"},
		{"a request the campaign does not review", "bob", fmt.Sprintf(`{"request_id":%q,"decision":"keep"}`, other), http.StatusNotFound, "not-found"},
	}
	for _, s := range steps {
		status, body := w.call(t, "POST", decisions, s.user, s.body)
		if status != s.status || (s.problem != "" && problem(t, body) != s.problem) {
			t.Fatalf("%s: %d %s, want %d %s", s.name, status, body, s.status, s.problem)
		}
	}
	if status, body := w.call(t, "GET", "/v1/campaigns/"+opened.ID, "erin", ""); status != http.StatusNotFound {
		t.Fatalf("erin, neither admin nor owner, sees the campaign: %d %s", status, body)
	}
	if v := w.campaign(t, "bob", opened.ID); len(v.Items) != 3 || itemState(v, alices) != events.ItemKept || itemState(v, franks) != events.ItemRevoked {
		t.Fatalf("bob's view: %+v", v)
	}

	poll.Until(t, 20*time.Second, "the campaign to close at its deadline", func() bool {
		return w.campaign(t, "carol", opened.ID).Status == events.CampaignStatusClosed
	})
	v := w.campaign(t, "carol", opened.ID)
	if itemState(v, daves) != events.ItemRevokedUnanswered || v.Awaiting != 0 {
		t.Fatalf("after the deadline: %+v", v)
	}
	l, err := w.stores[events.Revoker].LoadCampaign(t.Context(), opened.ID)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, ev := range l.Events() {
		types = append(types, ev.Type.Name())
	}
	if !slices.Equal(types, []string{"campaign_opened", "campaign_decided", "campaign_decided", "campaign_closed"}) {
		t.Fatalf("the evidence holds %v", types)
	}
	if closedAt := l.Events()[3].Time; closedAt.Before(deadline) {
		t.Fatalf("closed at %s, before the deadline %s", closedAt, deadline)
	}
	status, body = w.call(t, "GET", "/v1/campaigns", "frank", "")
	var list httpapi.CampaignList
	if err := json.Unmarshal(body, &list); status != http.StatusOK || err != nil || len(list.Campaigns) != 1 {
		t.Fatalf("frank's campaigns: %d %s", status, body)
	}
}
