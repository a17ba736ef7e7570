package consoletest

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/grantline/grantline/pkg/poll"
)

// TestPaymentsAdminInTheConsole is the README's two-stage approval done in browsers: alice asks for
// payments-admin; bob approves as its owner; alice's own attempt to approve is refused by the
// approval service and the page says so; carol approves for security; alice watches her request being
// granted on the demo target, live, and ends it early; erin, an auditor, opens its verified event
// timeline and asks who held payments-admin while it was granted.
func TestPaymentsAdminInTheConsole(t *testing.T) {
	e := startDev(t)
	browser := startBrowser(t)
	base := e.ConsoleURL()

	alice := newPerson(t, browser, base, "alice")
	alice.signIn()
	alice.sees("main h1", "My requests")
	alice.shot("home")
	alice.open("/catalogue")
	alice.sees("#ent-payments-admin + p", "Administrator of the payments database")
	alice.sees(`section[aria-labelledby="ent-payments-admin"]`, "yes: at most 30m, reviewed afterwards by security within 24h")
	alice.shot("catalogue")
	alice.readableAt(320, "catalogue", "")

	alice.do("ask for payments-admin", chromedp.Click(chromedp.CSS(`a[href="/requests/new?entitlement=payments-admin"]`)),
		chromedp.WaitVisible(chromedp.ID("justification")))
	alice.sees("#emergency-warning", "security must review it within 24h")
	// First a duration over payments-admin's two hours: intake refuses it, beside the field.
	alice.fill("justification", "INC-42 stuck migration on the payments database")
	alice.fill("duration", "3h")
	alice.fill("ticket", "INC-42")
	alice.do("submit", chromedp.Click(chromedp.CSS(`form[action="/requests"] button[type="submit"]`)), chromedp.WaitVisible(chromedp.ID("duration-error")))
	alice.sees("#duration-error", "longer than the 2h0m0s allowed for payments-admin")
	if got := eval[string](alice, `document.getElementById("duration").getAttribute("aria-describedby")`); !strings.Contains(got, "duration-error") {
		t.Errorf("the duration field is not described by its error: %q", got)
	}
	alice.shot("request-form-refused")
	alice.fill("duration", "1h")
	alice.do("submit again", chromedp.Click(chromedp.CSS(`form[action="/requests"] button[type="submit"]`)), chromedp.WaitVisible(chromedp.ID("live")))
	id := strings.TrimPrefix(strings.SplitN(alice.location(), "?", 2)[0], "/requests/")
	alice.sees(".notice", "Your request was submitted")
	// Policy decides while alice looks: the page follows without a reload.
	alice.sees("#status", "Awaiting approval")
	alice.sees(".timeline", "payments-admin is high risk: one approval from its owners, then one from security")
	alice.sees(".timeline", "Stage 1, owners: 1 approval(s) from payments-owners")

	bob := newPerson(t, browser, base, "bob")
	bob.signIn()
	bob.open("/reviews")
	item := `article[aria-labelledby="item-` + id + `"]`
	bob.sees(item, "alice asks for payments-admin")
	bob.sees(item, "INC-42 stuck migration on the payments database")
	bob.sees(item, "What policy said")
	bob.sees(item, "INC-42")
	bob.shot("reviews")
	bob.readableAt(320, "reviews", "")
	bob.fill("comment-"+id, "owner ok")
	bob.do("approve", chromedp.Click(chromedp.CSS(item+` button[value="approve"]`)), chromedp.WaitVisible(chromedp.CSS(".notice")))
	bob.sees(".notice", "Your review was recorded.")

	// alice's page shows bob's approval as it happens.
	alice.sees(".timeline", "Approved by bob: owner ok")
	alice.sees(".timeline", "Now: Stage 2, security")
	alice.do("approve her own request", chromedp.Click(chromedp.CSS(`form[action="/requests/`+id+`/review"] button[value="approve"]`)),
		chromedp.WaitVisible(chromedp.CSS(".refusal")))
	alice.sees(".refusal", "Separation of duties forbids this reviewer")
	alice.sees(".refusal", "HTTP 403")
	alice.shot("request-refused")
	alice.sees("#status", "Awaiting approval")

	carol := newPerson(t, browser, base, "carol")
	carol.signIn()
	carol.open("/reviews")
	carol.sees(item, "Your stage")
	carol.sees(item, "security: 0 of 1 approval(s) from security")
	carol.sees(item, "Stage 1: approve by bob: owner ok")
	carol.fill("comment-"+id, "security ok")
	carol.do("approve", chromedp.Click(chromedp.CSS(item+` button[value="approve"]`)), chromedp.WaitVisible(chromedp.CSS(".notice")))
	carol.sees(".notice", "Your review was recorded.")

	// alice sees it granted on the demo target, with what the target shows, then ends it early.
	alice.sees("#status", "Granted")
	alice.sees(".timeline", "Granted on")
	alice.sees(".timeline", "The target shows it present")
	alice.sees(".timeline", "Approved by bob, carol.")
	alice.open("/requests/" + id)
	alice.shot("request-granted")
	alice.readableAt(320, "request", "request-narrow")
	// The auditor's question below is asked to the second: a whole second at which alice certainly held
	// it (granted before now, revoked after), so the answer cannot depend on where in its second the
	// grant fell.
	grantedAt := time.Now().UTC().Truncate(time.Second).Add(time.Second)
	poll.Until(t, 2*time.Second, "the clock to pass "+grantedAt.Format(time.TimeOnly), func() bool { return time.Now().After(grantedAt) })
	alice.fill("revoke-reason", "the migration is done")
	alice.do("end access early", chromedp.Click(chromedp.CSS(`form[action="/requests/`+id+`/revoke"] button`)), chromedp.WaitVisible(chromedp.CSS(".notice")))
	alice.sees(".notice", "Ending the access was asked for")
	alice.sees("#status", "Ended: access revoked")
	alice.sees(".timeline", "Revoked (ended early)")
	alice.sees(".timeline", "The target shows it absent")

	erin := newPerson(t, browser, base, "erin")
	erin.signIn()
	erin.open("/audit?q=requests&entitlement=payments-admin")
	erin.sees("table", id)
	erin.do("open the evidence", chromedp.Click(chromedp.CSS(`a[href="/audit/requests/`+id+`"]`)), chromedp.WaitVisible(chromedp.CSS(".verdict")))
	erin.sees("#read-side-verdict", "Verified by the read side: every event's signature is valid")
	erin.sees("#console-verdict", "Checked again by this console against its trust file")
	for _, typ := range []string{"submitted", "policy_decided", "reviewed", "approved", "granted", "revocation_requested", "revoked"} {
		erin.sees(".evidence", typ)
	}
	entries := eval[int](erin, `document.querySelectorAll(".evidence > li").length`)
	verified := eval[int](erin, `[...document.querySelectorAll(".evidence .result")].filter(e => e.innerText === "verified").length`)
	links := eval[int](erin, `[...document.querySelectorAll(".evidence dd")].filter(e => e.innerText.includes(": the hash of ")).length`)
	if entries < 8 || verified != entries || links != entries {
		t.Errorf("the evidence lists %d events, %d verified, %d with their chain link holding", entries, verified, links)
	}
	erin.sees(".evidence", "key intake-dev-")
	erin.sees(".evidence", "key approval-dev-")
	erin.sees(".evidence", "the hash of the request ID (first event)")
	erin.sees(`a[download]`, "Download the evidence")
	download := eval[evidenceDownload](erin, `fetch(document.querySelector("a[download]").href).then(async r => {
		const body = await r.json();
		return {disposition: r.headers.get("content-disposition"), events: body.events.length, verified: body.verification.verified};
	})`, chromedp.EvalAwaitPromise)
	if download.Disposition != `attachment; filename="grantline-evidence-`+id+`.json"` || download.Events != entries || !download.Verified {
		t.Errorf("the evidence download: %+v", download)
	}
	erin.shot("audit-evidence")
	erin.readableAt(320, "audit-evidence", "")

	erin.open("/audit?q=grants")
	erin.sees("table", id)
	erin.sees("table", "revoked")

	erin.open("/audit")
	erin.do("ask who had payments-admin", chromedp.SetValue(chromedp.ID("wh-entitlement"), "payments-admin"),
		chromedp.SetValue(chromedp.ID("wh-at"), grantedAt.Format("2006-01-02T15:04:05")),
		chromedp.Click(chromedp.CSS(`form:has(#wh-at) button`)), chromedp.WaitVisible(chromedp.ID("who-had-answer")))
	erin.sees("main", "Who held payments-admin at")
	erin.sees("main", id)
	erin.shot("audit-who-had")
}

// evidenceDownload is what the evidence download holds, as the auditor's browser reads it.
type evidenceDownload struct {
	Disposition string `json:"disposition"`
	Events      int    `json:"events"`
	Verified    bool   `json:"verified"`
}
