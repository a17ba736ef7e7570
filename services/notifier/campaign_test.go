package notifier_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/services/notifier/render"
)

// TestPlanCampaign: who an access review of payments-admin tells. Its opening asks the owners (bob on
// Slack and e-mail, frank by e-mail); a reminder asks them again; the escalation asks security instead,
// as an escalation; a decision tells nobody (the revocation it causes is told as the request's).
func TestPlanCampaign(t *testing.T) {
	id, deadline, esc := events.NewID(), t0.Add(72*time.Hour), t0.Add(96*time.Hour)
	item := func(req, holder string) events.CampaignItem {
		return events.CampaignItem{RequestID: req, Entitlement: "payments-admin", SubjectID: holder, RequesterID: holder,
			ExpiresAt: t0.Add(30 * 24 * time.Hour), Owners: []string{"payments-owners"}}
	}
	a, b := events.NewID(), events.NewID()
	rita := events.Principal{ID: "carol", Groups: []string{"security"}}
	c := events.NewCampaign(id)
	apply := func(at time.Time, actor string, p events.Payload) events.Event {
		t.Helper()
		ev := events.Event{Envelope: events.Envelope{ID: events.NewID(), Type: p.EventType(), Subject: id, Time: at, Actor: actor}, Payload: p}
		if err := c.Apply(ev); err != nil {
			t.Fatal(err)
		}
		return ev
	}
	steps := []struct {
		name string
		at   time.Time
		by   string
		p    events.Payload
		want []string
	}{
		{"opened", t0, rita.ID, events.CampaignOpened{Name: "payments Q4", Filter: events.CampaignFilter{Entitlement: "payments-admin"},
			CreatedBy: rita, Deadline: deadline, Unanswered: events.CampaignEscalate, EscalateTo: []string{"security"}, EscalationDeadline: &esc,
			Items: []events.CampaignItem{item(a, "alice"), item(b, "dave")}},
			[]string{"certification_requested bob email", "certification_requested bob slack", "certification_requested frank email"}},
		{"bob keeps alice's grant", t0.Add(time.Hour), "bob", events.CampaignDecided{RequestID: a, Decision: events.CampaignKeep, Reviewer: bob}, nil},
		{"reminded of dave's", t0.Add(48 * time.Hour), "service:approval", events.CampaignReminded{Pending: []string{b}},
			[]string{"certification_reminder bob email", "certification_reminder bob slack", "certification_reminder frank email"}},
		{"escalated to security", deadline, "service:approval", events.CampaignEscalated{Items: []string{b}},
			[]string{"certification_requested carol email (escalated)", "certification_requested carol slack (escalated)"}},
	}
	for _, s := range steps {
		plan := rules.PlanCampaign(apply(s.at, s.by, s.p), c)
		if got := told(plan); !slices.Equal(got, s.want) {
			t.Fatalf("%s: told %v, want %v", s.name, got, s.want)
		}
		for _, n := range plan.Notifications {
			if n.RequestID != id || n.Facts.Campaign != "payments Q4" || n.Facts.Deadline == nil {
				t.Fatalf("%s: %+v", s.name, n)
			}
		}
		if len(plan.Notifications) > 0 {
			msg := render.Render(plan.Notifications[0])
			if !strings.Contains(msg.Subject, `Access review "payments Q4"`) || !strings.Contains(msg.Text, "grantline review campaign decide "+id) {
				t.Fatalf("%s renders as %q:\n%s", s.name, msg.Subject, msg.Text)
			}
		}
	}
}
