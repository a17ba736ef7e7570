package slackapi_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/grantline/grantline/api"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/services/notifier/notifiertest"
	"github.com/grantline/grantline/services/notifier/render"
	"github.com/grantline/grantline/services/notifier/slackapi"
	"github.com/grantline/grantline/services/notifier/slacktest"
)

// TestApprovingFromSlack: bob presses Approve in the review request Slack sent him. The callback is
// verified, U0BOB is bob, the approval service records bob's review (not the notifier's) and that the
// notifier carried it, and the message now says so instead of offering the buttons.
func TestApprovingFromSlack(t *testing.T) {
	w := newWorld(t)
	id, digest := w.PaymentsAdmin(t, notifiertest.Alice)
	msg := w.ask(t, "U0BOB", id, digest)
	body := callback(t, "U0BOB", msg, id, render.ActionApprove)
	status, out := w.post(t, body, slacktest.Sign(signingSecret, body, time.Now()))
	if status != http.StatusOK || out["outcome"] != "approved" || out["reviewer"] != "bob" {
		t.Fatalf("%d %v", status, out)
	}
	l, err := w.Stores[events.Approval].Load(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	rv := l.Request.Reviews()
	if len(rv) != 1 || rv[0].Reviewer.ID != "bob" || rv[0].Decision != events.ReviewApprove || rv[0].RequestDigest != digest {
		t.Fatalf("recorded reviews %+v", rv)
	}
	if rv[0].Via != "grantline-notifier" {
		t.Fatalf("the review records %q as having carried it, want the notifier's client (the token's act claim)", rv[0].Via)
	}
	if ev := l.Events[len(l.Events)-1]; ev.Source != "/grantline/approval" || ev.Actor != "bob" {
		t.Fatalf("the review was recorded by %s as %s, want the approval service as bob", ev.Source, ev.Actor)
	}
	updated := w.slack.Updated()
	if len(updated) != 1 || !strings.HasPrefix(updated[0].Text, "Approved by bob") || strings.Contains(updated[0].BlocksJSON, render.ActionApprove) {
		t.Fatalf("the Slack message was updated to %+v", updated)
	}
	if v := w.slack.Violations(); len(v) > 0 {
		t.Fatalf("requests Slack would refuse: %v", v)
	}

	// Bob presses the button again (he was told to try again, or Slack retried): the same action,
	// answered with the review recorded, not refused as a second one.
	again := callback(t, "U0BOB", msg, id, render.ActionApprove)
	status, out = w.post(t, again, slacktest.Sign(signingSecret, again, time.Now()))
	if status != http.StatusOK || out["outcome"] != "approved" {
		t.Fatalf("the same press again: %d %v", status, out)
	}
	if n := w.reviews(t, id); n != 1 {
		t.Fatalf("%d reviews after the same press twice, want 1", n)
	}
}

// TestOnePressInADigest: bob's message asks for two reviews at once. He approves the first; the
// message then says so in place of the first request's buttons and still offers the second's.
func TestOnePressInADigest(t *testing.T) {
	w := newWorld(t)
	first, firstDigest := w.PaymentsAdmin(t, notifiertest.Alice)
	second, secondDigest := w.PaymentsAdmin(t, notifiertest.Alice)
	msg := w.askAll(t, "U0BOB", map[string]string{first: firstDigest, second: secondDigest})
	body := callback(t, "U0BOB", msg, first, render.ActionApprove)
	if status, out := w.post(t, body, slacktest.Sign(signingSecret, body, time.Now())); status != http.StatusOK || out["outcome"] != "approved" {
		t.Fatalf("%d %v", status, out)
	}
	updated := w.slack.Updated()
	if len(updated) != 1 || !strings.Contains(updated[0].BlocksJSON, "Approved by bob") {
		t.Fatalf("the Slack message was updated to %+v", updated)
	}
	after := slacktest.Message{Channel: msg.Channel, TS: msg.TS, Blocks: updated[0].Blocks}
	if _, err := slacktest.Press("U0BOB", after, first, render.ActionApprove); err == nil {
		t.Error("the approved request's buttons are still offered")
	}
	if _, err := slacktest.Press("U0BOB", after, second, render.ActionApprove); err != nil {
		t.Errorf("the other request's buttons are gone: %v", err)
	}
}

// TestRefusedCallbacks: each callback that must not lead to a review is refused with an answer that
// says why, and nothing is recorded. Those not from Slack (or not again) are refused before anything
// is done; the others reach the approval service, whose rules refuse them, and the message says so.
func TestRefusedCallbacks(t *testing.T) {
	w := newWorld(t)
	cases := []struct {
		name string
		// press returns the request pressed on, the body and headers of the callback.
		press   func(t *testing.T) (id, body string, h http.Header)
		status  int
		problem string
		// says is what the Slack message says afterwards; "" means it is left alone.
		says string
	}{
		{name: "a bad signature", status: http.StatusUnauthorized, problem: "https://grantline.dev/problems/bad-slack-signature",
			press: func(t *testing.T) (string, string, http.Header) {
				id, digest := w.PaymentsAdmin(t, notifiertest.Alice)
				body := callback(t, "U0BOB", w.ask(t, "U0BOB", id, digest), id, render.ActionApprove)
				return id, body, slacktest.Sign("not-the-signing-secret", body, time.Now())
			}},
		{name: "a body changed after signing", status: http.StatusUnauthorized, problem: "https://grantline.dev/problems/bad-slack-signature",
			press: func(t *testing.T) (string, string, http.Header) {
				id, digest := w.PaymentsAdmin(t, notifiertest.Alice)
				body := callback(t, "U0BOB", w.ask(t, "U0BOB", id, digest), id, render.ActionApprove)
				return id, strings.Replace(body, "U0BOB", "U0CAROL", 1), slacktest.Sign(signingSecret, body, time.Now())
			}},
		{name: "a stale timestamp (signed six minutes ago)", status: http.StatusUnauthorized,
			problem: "https://grantline.dev/problems/bad-slack-signature",
			press: func(t *testing.T) (string, string, http.Header) {
				id, digest := w.PaymentsAdmin(t, notifiertest.Alice)
				body := callback(t, "U0BOB", w.ask(t, "U0BOB", id, digest), id, render.ActionApprove)
				return id, body, slacktest.Sign(signingSecret, body, time.Now().Add(-6*time.Minute))
			}},
		{name: "no signature at all", status: http.StatusUnauthorized, problem: "https://grantline.dev/problems/bad-slack-signature",
			press: func(t *testing.T) (string, string, http.Header) {
				id, digest := w.PaymentsAdmin(t, notifiertest.Alice)
				body := callback(t, "U0BOB", w.ask(t, "U0BOB", id, digest), id, render.ActionApprove)
				return id, body, http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
			}},
		{name: "a replayed body (the same signed callback a second time)", status: http.StatusConflict,
			problem: "https://grantline.dev/problems/replayed-callback",
			press: func(t *testing.T) (string, string, http.Header) {
				id, digest := w.PaymentsAdmin(t, notifiertest.Alice)
				body := callback(t, "U0BOB", w.ask(t, "U0BOB", id, digest), id, render.ActionReject)
				h := slacktest.Sign(signingSecret, body, time.Now())
				// Slack's own delivery, acted on: bob's rejection is recorded.
				if status, out := w.post(t, body, h); status != http.StatusOK || out["outcome"] != "rejected" {
					t.Fatalf("the original callback: %d %v", status, out)
				}
				return id, body, h
			}},
		{name: "a Slack user linked to nobody", status: http.StatusOK, problem: "unknown-slack-user",
			says: "Refused: your Slack account is not linked",
			press: func(t *testing.T) (string, string, http.Header) {
				id, digest := w.PaymentsAdmin(t, notifiertest.Alice)
				body := callback(t, "U0NOBODY", w.ask(t, "U0BOB", id, digest), id, render.ActionApprove)
				return id, body, slacktest.Sign(signingSecret, body, time.Now())
			}},
		{name: "self-approval: frank approves his own request", status: http.StatusOK, problem: "separation-of-duties",
			says: "Refused: separation of duties",
			press: func(t *testing.T) (string, string, http.Header) {
				id, digest := w.PaymentsAdmin(t, notifiertest.Frank)
				body := callback(t, "U0FRANK", w.ask(t, "U0FRANK", id, digest), id, render.ActionApprove)
				return id, body, slacktest.Sign(signingSecret, body, time.Now())
			}},
		{name: "approval of an already decided request", status: http.StatusOK, problem: "not-pending",
			says: "Already decided",
			press: func(t *testing.T) (string, string, http.Header) {
				id, digest := w.PaymentsAdmin(t, notifiertest.Alice)
				msg := w.ask(t, "U0FRANK", id, digest)
				w.Append(t, events.Approval, id,
					events.Draft{Payload: events.Reviewed{Reviewer: notifiertest.Bob, Stage: 0, Decision: events.ReviewReject, RequestDigest: digest}, Actor: "bob"},
					events.Draft{Payload: events.Rejected{Reason: events.RejectedByReviewer, RejectedBy: "bob"}})
				body := callback(t, "U0FRANK", msg, id, render.ActionApprove)
				return id, body, slacktest.Sign(signingSecret, body, time.Now())
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id, body, h := tc.press(t)
			reviewsBefore, updatesBefore := w.reviews(t, id), len(w.slack.Updated())
			status, out := w.post(t, body, h)
			got := out["problem"]
			if status != http.StatusOK {
				got = out["type"]
			}
			if status != tc.status || got != tc.problem || (status == http.StatusOK && out["outcome"] != "refused") {
				t.Fatalf("answered %d %v, want %d with %s", status, out, tc.status, tc.problem)
			}
			if n := w.reviews(t, id); n != reviewsBefore {
				t.Fatalf("%d reviews recorded, want none (had %d)", n-reviewsBefore, reviewsBefore)
			}
			updates := w.slack.Updated()[updatesBefore:]
			switch {
			case tc.says == "" && len(updates) > 0:
				t.Fatalf("the Slack message was changed to %q", updates[0].Text)
			case tc.says != "" && (len(updates) != 1 || !strings.HasPrefix(updates[0].Text, tc.says)):
				t.Fatalf("the Slack message says %+v, want %q", updates, tc.says)
			}
		})
	}
}

// TestContract: the routes the endpoint registers are the ones api/openapi.yaml documents for the
// notifier, and no other.
func TestContract(t *testing.T) {
	var listed api.Recorder
	(&slackapi.Handler{}).Routes(&listed)
	if err := api.CompareRoutes("notifier", listed.Patterns()); err != nil {
		t.Fatal(err)
	}
}
