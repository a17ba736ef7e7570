package web_test

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/services/console/session"
)

// TestARefusedFormShowsEachErrorBesideItsField: intake refuses a submission field by field; the form
// comes back with what was typed, each message under its field and tied to it for screen readers,
// and a summary linking to each field.
func TestARefusedFormShowsEachErrorBesideItsField(t *testing.T) {
	s := newSite(t)
	alice := s.signIn(t, "alice")
	form := url.Values{"entitlement": {"payments-admin"}, "justification": {"too short"}, "duration": {"3 days"},
		"ticket": {"INC-7"}, "idempotency_key": {session.NewID()}}
	p := alice.post("/requests", form)
	if p.status != http.StatusUnprocessableEntity {
		t.Fatalf("answered %d: %s", p.status, p.body)
	}
	for _, want := range []string{
		`aria-describedby="justification-hint justification-error" aria-invalid="true">too short</textarea>`,
		`<p class="error" id="justification-error">must say why, in at least 10 characters</p>`,
		`id="duration-error">`,
		`value="3 days"`,
		`value="INC-7"`,
		`<a href="#justification">justification: must say why`,
		`<option value="payments-admin" selected>`,
	} {
		if !strings.Contains(p.body, want) {
			t.Errorf("the refused form lacks %s", want)
		}
	}
	if strings.Contains(p.body, `class="refusal"`) {
		t.Error("the refusal is shown a second time above the summary of its fields")
	}
	if strings.Contains(p.body, `id="ticket-error"`) {
		t.Error("an error is shown beside the ticket, which intake accepted")
	}
	if p := alice.post("/requests", url.Values{"entitlement": {"analytics-read"}, "justification": {"weekly revenue report"},
		"duration": {"2h"}, "start": {"next tuesday"}}); p.status != http.StatusUnprocessableEntity || !strings.Contains(p.body, `id="start-error"`) {
		t.Errorf("an unreadable start answered %d", p.status)
	}
}

// TestTheFormIsSubmittedOnce: sending the same form twice (a double click, a reload) makes one
// request, through intake's Idempotency-Key.
func TestTheFormIsSubmittedOnce(t *testing.T) {
	s := newSite(t)
	alice := s.signIn(t, "alice")
	form := analyticsForm("weekly revenue report")
	if first, second := alice.submit(form), alice.submit(form); first != second {
		t.Fatalf("the same form made requests %s and %s", first, second)
	}
}

// TestAskingAgainFillsTheForm: "ask again" (offered on a failed request) opens the form with what the
// earlier request asked for, ready to send as a new request.
func TestAskingAgainFillsTheForm(t *testing.T) {
	s := newSite(t)
	alice := s.signIn(t, "alice")
	first := alice.submit(analyticsForm("weekly revenue report"))
	p := alice.get("/requests/new?again=" + first)
	if p.status != http.StatusOK {
		t.Fatalf("the form to ask again: %d %s", p.status, p.body)
	}
	for _, want := range []string{`<option value="analytics-read" selected`, `>weekly revenue report</textarea>`, `value="2h0m0s"`} {
		if !strings.Contains(p.body, want) {
			t.Errorf("the form to ask again lacks %s", want)
		}
	}
}

// TestTheRequestPageFollowsTheRequest: the page's live stream sends the re-rendered region when the
// request moves (here alice withdraws it elsewhere), and ends once it can no longer change.
func TestTheRequestPageFollowsTheRequest(t *testing.T) {
	s := newSite(t)
	alice := s.signIn(t, "alice")
	id := alice.submit(analyticsForm("weekly revenue report"))
	p := alice.get("/requests/" + id)
	if !strings.Contains(p.body, `data-live="/requests/`+id+`/live?version=1"`) || !strings.Contains(p.body, "Submitted: awaiting policy") {
		t.Fatalf("the request page:\n%s", p.body)
	}
	if _, v := s.view(t, "alice", id); v.Status != events.StatusSubmitted {
		t.Fatalf("status %s", v.Status)
	}
	done := make(chan string, 1)
	go func() { done <- alice.stream("/requests/"+id+"/live?version=1", "end") }()
	if w := s.signIn(t, "alice").post("/requests/"+id+"/withdraw", url.Values{"reason": {"not needed"}}); w.status != http.StatusSeeOther {
		t.Fatalf("withdraw: %d", w.status)
	}
	got := <-done
	if !strings.Contains(got, "event: live") || !strings.Contains(got, "Withdrawn by the requester") {
		t.Fatalf("the stream:\n%s", got)
	}
}

var madeLink = regexp.MustCompile(`<a href="/requests/([0-9A-Z]{26})">([a-z-]+)</a>`)

// TestAskingForSeveralAtOnce: the form for several entitlements makes one request each, linked by one
// correlation ID, and lists them; sending it again makes nothing more; a list with an unknown
// entitlement is refused whole, beside the entitlements.
func TestAskingForSeveralAtOnce(t *testing.T) {
	s := newSite(t)
	alice := s.signIn(t, "alice")
	if p := alice.get("/requests/several"); p.status != http.StatusOK || !strings.Contains(p.body, `value="payments-admin"`) ||
		strings.Contains(p.body, `value="reporting-db-credential"`) {
		t.Fatalf("the form: %d (a person's entitlements only)\n%s", p.status, p.body)
	}
	form := url.Values{"entitlement": {"analytics-read", "payments-admin"}, "justification": {"onboarding to the payments team"},
		"duration": {"1h"}, "idempotency_key": {session.NewID()}}
	p := alice.post("/requests/several", form)
	made := madeLink.FindAllStringSubmatch(p.body, -1)
	if p.status != http.StatusOK || len(made) != 2 || made[0][2] != "analytics-read" || made[1][2] != "payments-admin" {
		t.Fatalf("submitting two: %d %s", p.status, p.body)
	}
	_, first := s.view(t, "alice", made[0][1])
	_, second := s.view(t, "alice", made[1][1])
	if first.CorrelationID == "" || first.CorrelationID != second.CorrelationID {
		t.Fatalf("the two requests are not linked: %q and %q", first.CorrelationID, second.CorrelationID)
	}
	if again := madeLink.FindAllStringSubmatch(alice.post("/requests/several", form).body, -1); len(again) != 2 || again[0][1] != made[0][1] || again[1][1] != made[1][1] {
		t.Fatalf("the same form sent again made %v, want %v", again, made)
	}
	form.Set("idempotency_key", session.NewID())
	form["entitlement"] = []string{"analytics-read", "root-everywhere"}
	p = alice.post("/requests/several", form)
	if p.status != http.StatusUnprocessableEntity || !strings.Contains(p.body, `id="entitlements-error"`) || !strings.Contains(p.body, "root-everywhere") {
		t.Fatalf("an unknown entitlement: %d %s", p.status, p.body)
	}
}
