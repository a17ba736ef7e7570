package consoletest

import (
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/grantline/grantline/pkg/poll"
)

// TestManualTasksAndPostReviews: the reviewers' and fulfillers' other work, in browsers. alice asks
// for the mainframe operator profile, which security approves and operations grants by hand: dave
// completes the task with evidence and alice sees who granted it. She ends it early, which takes a
// revoke task, completed at the revoker: dave does it from the same task list, and alice sees it
// ended. Then alice takes payments-admin on the emergency path, granted at once; carol finds its
// post-review in her inbox and ratifies it.
func TestManualTasksAndPostReviews(t *testing.T) {
	e := startDev(t)
	browser := startBrowser(t)
	base := e.ConsoleURL()

	alice := newPerson(t, browser, base, "alice")
	alice.signIn()
	manual := alice.ask("mainframe-operator", "rerun the settlement batch", "1h", false)
	alice.sees("#status", "Awaiting approval")

	carol := newPerson(t, browser, base, "carol")
	carol.signIn()
	carol.open("/reviews")
	item := `article[aria-labelledby="item-` + manual + `"]`
	carol.sees(item, "mainframe-operator: one approval from security")
	carol.do("approve", chromedp.Click(chromedp.CSS(item+` button[value="approve"]`)), chromedp.WaitVisible(chromedp.CSS(".notice")))
	alice.sees(".timeline", "Fulfilment grants it on the target")

	dave := newPerson(t, browser, base, "dave")
	dave.signIn()
	task := manual + "-grant"
	card := `article[aria-labelledby="task-` + task + `"]`
	dave.open("/tasks")
	dave.sees(card, "Grant mainframe-operator for alice")
	dave.sees(card, "operations")
	dave.shot("tasks")
	dave.fill("evidence-"+task, "CHG-1234: operator profile added by hand")
	dave.do("complete the task", chromedp.Click(chromedp.CSS(card+" button")), chromedp.WaitVisible(chromedp.CSS(".notice")))
	dave.sees(".notice", "The task was completed with your evidence.")
	alice.sees("#status", "Granted")
	alice.sees(".timeline", "Granted by dave through manual.")

	alice.fill("revoke-reason", "the batch is rerun")
	alice.do("end access early", chromedp.Click(chromedp.CSS(`form[action="/requests/`+manual+`/revoke"] button`)), chromedp.WaitVisible(chromedp.CSS(".notice")))
	revoke := manual + "-revoke"
	card = `article[aria-labelledby="task-` + revoke + `"]`
	poll.Until(t, stepTimeout, "the revoke task in dave's list", func() bool {
		dave.open("/tasks")
		return eval[bool](dave, `!!document.querySelector(`+quote(card)+`)`)
	})
	dave.sees(card, "Revoke mainframe-operator for alice")
	dave.fill("evidence-"+revoke, "CHG-1235: operator profile removed by hand")
	dave.do("complete the revoke task", chromedp.Click(chromedp.CSS(card+" button")), chromedp.WaitVisible(chromedp.CSS(".notice")))
	dave.sees(".notice", "The task was completed with your evidence.")
	alice.sees("#status", "Ended: access revoked")

	emergency := alice.ask("payments-admin", "INC-43 payments are down", "20m", true)
	alice.sees("#status", "Granted")
	alice.sees(".timeline", "Emergency access: granted without approval, reviewed afterwards")
	alice.sees(".timeline", "Now: Post-review by security")

	carol.open("/reviews")
	item = `article[aria-labelledby="item-` + emergency + `"]`
	carol.sees(item, "post-review of an emergency grant")
	carol.sees(item, "INC-43 payments are down")
	carol.do("ratify", chromedp.Click(chromedp.CSS(item+` button[value="ratified"]`)), chromedp.WaitVisible(chromedp.CSS(".notice")))
	carol.sees(".notice", "Your post-review was recorded.")
	alice.sees(".timeline", "Ratified by carol.")
}

// ask submits the request form for entitlement and waits for the request's page; it returns the
// request's ID.
func (p *person) ask(entitlement, justification, duration string, emergency bool) string {
	p.t.Helper()
	p.open("/requests/new?entitlement=" + entitlement)
	p.fill("justification", justification)
	p.fill("duration", duration)
	if emergency {
		p.do("tick emergency", chromedp.Click(chromedp.ID("emergency")))
	}
	p.do("submit", chromedp.Click(chromedp.CSS(`form[action="/requests"] button[type="submit"]`)), chromedp.WaitVisible(chromedp.ID("live")))
	return strings.TrimPrefix(strings.SplitN(p.location(), "?", 2)[0], "/requests/")
}
