package render_test

import (
	"encoding/json/v2"
	"strings"
	"testing"
	"time"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/services/notifier"
	"github.com/grantline/grantline/services/notifier/render"
)

var expires = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

func note(kind notifier.Kind) notifier.Notification {
	deadline := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
	return notifier.Notification{Cause: "01KB00000000000000000000EV", Kind: kind, RequestID: "01KB0000000000000000000001",
		Channel: notifier.Email, To: notifier.Person{ID: "bob", Name: "Bob Owner", Email: "bob@example.test"}, Address: "bob@example.test",
		Facts: notifier.Facts{Requester: notifier.Person{ID: "alice", Name: "Alice Engineer"},
			Subject:     events.RequestSubject{Kind: events.SubjectHuman, ID: "alice"},
			Entitlement: notifier.Entitlement{ID: "payments-admin", Description: "Administrator of the payments database"},
			// A justification with markup: it must reach people as text, never as HTML or Slack links.
			Justification: "INC-7 <script>alert(1)</script> & <!channel>", Ticket: "INC-7", DurationSeconds: 3600,
			PolicyReasons: []string{"high risk"}, Stage: "owners", StageGroups: []string{"payments-owners"}, Deadline: &deadline,
			RequestDigest: "sha256:abc", Approvers: []string{"bob", "carol"}, ExpiresAt: &expires,
			Observed: &events.Observed{Present: false}, Reason: "expired", TaskID: "T1"}}
}

// TestRender: every kind renders a subject that says what happened, the same facts in text, HTML and
// Slack, people's text escaped, and review buttons only on review requests.
func TestRender(t *testing.T) {
	cases := []struct {
		kind    notifier.Kind
		subject string
		says    string
		buttons bool
	}{
		{notifier.ReviewRequested, "Review requested: alice asks for payments-admin", "Review by: 2026-12-02 09:00 UTC", true},
		{notifier.ReviewReminder, "Reminder: Review requested: alice asks for payments-admin", "Your stage: owners (payments-owners)", true},
		{notifier.AwaitingApproval, "Your request for payments-admin awaits approval", "Approval by: payments-owners", false},
		{notifier.Denied, "Denied: your request for payments-admin", "Policy said: high risk", false},
		{notifier.Approved, "Approved: your request for payments-admin", "Approved by: bob, carol", false},
		{notifier.Rejected, "Rejected: your request for payments-admin", "Outcome: nobody approved it", false},
		{notifier.Granted, "Granted: payments-admin until 2026-12-01 10:00 UTC", "Access ends: 2026-12-01 10:00 UTC", false},
		{notifier.ExpiryWarning, "Your access to payments-admin ends at 2026-12-01 10:00 UTC", "To keep it, ask again", false},
		{notifier.Revoked, "Access ended: payments-admin (expired)", "Target shows: absent", false},
		{notifier.PostReviewDue, "Post-review due: emergency access to payments-admin by alice", "Post-review by:", false},
		{notifier.TaskOverdue, "Overdue manual task T1: payments-admin for alice", "grantline task complete T1", false},
		{notifier.RevocationFailed, "Revocation failing: payments-admin of alice", "Reason: expired", false},
	}
	for _, tc := range cases {
		t.Run(string(tc.kind), func(t *testing.T) {
			m := render.Render(note(tc.kind))
			if m.Subject != tc.subject {
				t.Errorf("subject %q, want %q", m.Subject, tc.subject)
			}
			if !strings.Contains(m.Text, tc.says) {
				t.Errorf("text does not say %q:\n%s", tc.says, m.Text)
			}
			if !strings.Contains(m.Text, "<script>") || strings.Contains(m.HTML, "<script>") || !strings.Contains(m.HTML, "&lt;script&gt;") {
				t.Errorf("the justification must be plain in text and escaped in HTML:\n%s", m.HTML)
			}
			blocks, err := json.Marshal(m.Blocks)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(blocks), "<!channel>") {
				t.Errorf("Slack blocks carry an unescaped mention: %s", blocks)
			}
			if got := strings.Contains(string(blocks), render.ActionApprove); got != tc.buttons {
				t.Errorf("review buttons: %v, want %v", got, tc.buttons)
			}
		})
	}
}

// TestRenderDrift: each kind of drift says what the target showed and what was done; a finding shows
// itself, not a request.
func TestRenderDrift(t *testing.T) {
	cases := []struct {
		kind      events.DriftKind
		subject   string
		says, not string
	}{
		{events.DriftAfterRevocation, "[Escalated] Drift: access to payments-admin of alice was back after its revocation; revoked again",
			"Target: postgres: role grantline_x", "Finding:"},
		{events.DriftMissing, "[Escalated] Drift: access to payments-admin of alice is missing on the target", "Target shows: absent", "Finding:"},
		{events.DriftUnexplained, "[Escalated] Drift: access that no request explains on postgres: role grantline_x",
			"Finding: 01KB0000000000000000000001", "Requested by"},
	}
	for _, tc := range cases {
		t.Run(string(tc.kind), func(t *testing.T) {
			n := note(notifier.DriftDetected)
			n.Escalated, n.Facts.Reason, n.Facts.Target = true, string(tc.kind), "postgres: role grantline_x"
			m := render.Render(n)
			if m.Subject != tc.subject || !strings.Contains(m.Text, tc.says) || strings.Contains(m.Text, tc.not) {
				t.Errorf("subject %q, want %q; text, which must say %q and not %q:\n%s", m.Subject, tc.subject, tc.says, tc.not, m.Text)
			}
		})
	}
}

// TestReviewButtons: the buttons carry back the request and the digest the message showed.
func TestReviewButtons(t *testing.T) {
	blocks, _ := json.Marshal(render.Render(note(notifier.ReviewRequested)).Blocks)
	var decoded []struct {
		Type     string `json:"type"`
		Elements []struct {
			ActionID string `json:"action_id"`
			Value    string `json:"value"`
		} `json:"elements"`
	}
	if err := json.Unmarshal(blocks, &decoded, json.RejectUnknownMembers(false)); err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, b := range decoded {
		for _, e := range b.Elements {
			if e.ActionID == "" {
				continue
			}
			a, err := render.ParseReviewAction(e.Value)
			if err != nil || a.RequestID != "01KB0000000000000000000001" || a.RequestDigest != "sha256:abc" {
				t.Errorf("%s carries %q: %+v, %v", e.ActionID, e.Value, a, err)
			}
			actions = append(actions, e.ActionID)
		}
	}
	if strings.Join(actions, ",") != render.ActionApprove+","+render.ActionReject {
		t.Fatalf("buttons %v, want approve and reject", actions)
	}
}

// TestDigest: three notifications for one person become one message naming all three.
func TestDigest(t *testing.T) {
	m := render.Digest([]notifier.Notification{note(notifier.ReviewRequested), note(notifier.Granted), note(notifier.Revoked)})
	if m.Subject != "3 updates on access requests" {
		t.Errorf("subject %q", m.Subject)
	}
	for _, title := range []string{"Review requested:", "Granted:", "Access ended:"} {
		if strings.Count(m.Text, title) != 1 || !strings.Contains(m.HTML, title) {
			t.Errorf("the digest does not carry %q once:\n%s", title, m.Text)
		}
	}
	if one := render.Digest([]notifier.Notification{note(notifier.Granted)}); one.Subject != render.Render(note(notifier.Granted)).Subject {
		t.Errorf("a digest of one is the message itself, got %q", one.Subject)
	}
}
