package consoletest

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// TestACredentialIsShownOnceAndNeverStored: frank asks for the reporting service account's login; bob,
// an owner of its team, approves; frank retrieves the password once, on a page the browser is told
// never to store, and a second retrieval is refused as the fulfilment service words it.
func TestACredentialIsShownOnceAndNeverStored(t *testing.T) {
	e := startDev(t)
	browser := startBrowser(t)
	base := e.ConsoleURL()
	var mu sync.Mutex
	cacheControl := map[string]string{}
	frank := newPerson(t, browser, base, "frank", chromedp.WithListener(func(ev any) {
		if r, ok := ev.(*network.EventResponseReceived); ok && strings.HasSuffix(r.Response.URL, "/credential") {
			mu.Lock()
			cacheControl[r.Response.URL] = fmt.Sprint(r.Response.Headers["Cache-Control"])
			mu.Unlock()
		}
	}))
	frank.signIn()
	frank.open("/requests/new?entitlement=reporting-db-credential")
	frank.sees(`label[for="subject"]`, "Who will hold it")
	frank.fill("justification", "nightly export to finance")
	frank.fill("duration", "30m")
	frank.do("submit", chromedp.Click(chromedp.CSS(`form[action="/requests"] button[type="submit"]`)), chromedp.WaitVisible(chromedp.ID("live")))
	id := strings.TrimPrefix(strings.SplitN(frank.location(), "?", 2)[0], "/requests/")
	frank.sees("#status", "Awaiting approval")
	frank.sees(".summary", "service_account svc-reporting")

	bob := newPerson(t, browser, base, "bob")
	bob.signIn()
	bob.open("/reviews")
	item := `article[aria-labelledby="item-` + id + `"]`
	bob.sees(item, "for service_account svc-reporting (owned by payments-owners)")
	bob.do("approve", chromedp.Click(chromedp.CSS(item+` button[value="approve"]`)), chromedp.WaitVisible(chromedp.CSS(".notice")))

	frank.sees("#status", "Granted")
	frank.sees(".timeline", "A credential was issued")
	frank.do("open the credential page", chromedp.Click(chromedp.CSS(`a[href="/requests/`+id+`/credential"]`)), chromedp.WaitVisible(chromedp.CSS(`form[action="/requests/`+id+`/credential"]`)))
	frank.do("show it", chromedp.Click(chromedp.CSS(`form[action="/requests/`+id+`/credential"] button`)), chromedp.WaitVisible(chromedp.ID("password")))
	if pw := frank.text("#password"); len(pw) < 16 {
		t.Errorf("the password shown is %q", pw)
	}
	frank.sees(".secret", "It is shown this once")
	mu.Lock()
	got := cacheControl[base+"/requests/"+id+"/credential"]
	mu.Unlock()
	if got != "no-store" {
		t.Errorf("the credential page came with Cache-Control %q, want no-store", got)
	}
	frank.open("/requests/" + id + "/credential")
	frank.do("show it again", chromedp.Click(chromedp.CSS(`form[action="/requests/`+id+`/credential"] button`)), chromedp.WaitVisible(chromedp.CSS(".refusal")))
	frank.sees(".refusal", "The credential was already retrieved or has expired")
	if frank.text("#password") != "" {
		t.Error("the password is shown a second time")
	}
}

// TestTheKeyboardReachesTheContent: the first Tab lands on a visible "skip to the content" link whose
// focus is drawn, and following it puts the focus on the page's content.
func TestTheKeyboardReachesTheContent(t *testing.T) {
	e := startDev(t)
	alice := newPerson(t, startBrowser(t), e.ConsoleURL(), "alice")
	alice.signIn()
	alice.open("/catalogue")
	alice.do("press Tab", chromedp.KeyEvent(kb.Tab))
	if got := eval[string](alice, `document.activeElement.innerText`); got != "Skip to the content" {
		t.Fatalf("the first Tab focuses %q", got)
	}
	if style := eval[string](alice, `getComputedStyle(document.activeElement).outlineStyle`); style != "solid" {
		t.Errorf("the focused link's outline is %q, want a visible solid one", style)
	}
	if left := eval[float64](alice, `document.activeElement.getBoundingClientRect().left`); left < 0 {
		t.Errorf("the focused skip link is off screen (left %v)", left)
	}
	alice.do("press Enter", chromedp.KeyEvent(kb.Enter))
	if got := eval[string](alice, `document.activeElement.id`); got != "main" {
		t.Errorf("after the skip link the focus is on %q, want main", got)
	}
	for i := 0; i < 3; i++ {
		alice.do("press Tab", chromedp.KeyEvent(kb.Tab))
	}
	if got := eval[string](alice, `document.activeElement.closest("main") ? "main" : document.activeElement.tagName`); got != "main" {
		t.Errorf("tabbing on from the content leaves it for %q", got)
	}
}

// TestAnotherSitesFormIsRefused: a page on another origin of the same host (so the browser sends
// alice's cookie along: SameSite counts sites, not ports) posts a form that would end her access.
// The console refuses it, says so, and her access stands.
func TestAnotherSitesFormIsRefused(t *testing.T) {
	e := startDev(t)
	base := e.ConsoleURL()
	alice := newPerson(t, startBrowser(t), base, "alice")
	alice.signIn()
	alice.open("/requests/new?entitlement=analytics-read")
	alice.fill("justification", "weekly revenue report")
	alice.fill("duration", "1h")
	alice.do("submit", chromedp.Click(chromedp.CSS(`form[action="/requests"] button[type="submit"]`)), chromedp.WaitVisible(chromedp.ID("live")))
	id := strings.TrimPrefix(strings.SplitN(alice.location(), "?", 2)[0], "/requests/")
	alice.sees("#status", "Granted")

	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, `<!doctype html><title>Win a prize</title>
<form id="f" method="post" action="%s/requests/%s/revoke"><input name="reason" value="forged"><button>Claim</button></form>`, base, id)
	}))
	t.Cleanup(evil.Close)
	alice.do("visit another site and press its button", chromedp.Navigate(evil.URL), chromedp.Click(chromedp.CSS("#f button")),
		chromedp.WaitVisible(chromedp.CSS(".refusal")))
	alice.sees("main h1", "Refused: sent from another site")
	alice.sees(".refusal", "nothing was done")
	alice.open("/requests/" + id)
	alice.sees("#status", "Granted")
	if strings.Contains(alice.text(".timeline"), "Revocation due") {
		t.Error("the forged form asked for a revocation")
	}
}
