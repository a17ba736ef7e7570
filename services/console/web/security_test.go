package web_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/services/console/session"
)

// TestTheSessionCookie: signing in sets one cookie, holding an opaque ID, that scripts cannot read
// (HttpOnly), that other sites' forms do not carry (SameSite=Lax), for the whole console (Path=/),
// ending with the session. It is not Secure here because the console is served over plain http on
// the loopback interface (grantline dev); the rows below show the policy everywhere else.
func TestTheSessionCookie(t *testing.T) {
	s := newSite(t)
	b := s.signIn(t, "alice")
	c := b.sessionCookie
	if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Secure {
		t.Errorf("session cookie %q: HttpOnly %v, SameSite %v, Path %q, Secure %v; want HttpOnly, Lax, /, not Secure on loopback http",
			c.Raw, c.HttpOnly, c.SameSite, c.Path, c.Secure)
	}
	if until := time.Until(c.Expires); until <= 0 || until > time.Hour+time.Minute {
		t.Errorf("session cookie expires in %s, want within the session's hour", until)
	}
	if strings.Contains(c.Value, "alice") || strings.Count(c.Value, ".") == 2 {
		t.Errorf("the cookie carries more than an opaque ID: %q", c.Value)
	}

	for _, tc := range []struct {
		publicURL  string
		wantSecure bool
		wantName   string
		wantErr    bool
	}{
		{publicURL: "https://grantline.example.com", wantSecure: true, wantName: "__Host-grantline-session"},
		{publicURL: "http://localhost:8080", wantName: "grantline-session"},
		{publicURL: "http://127.0.0.1:8080", wantName: "grantline-session"},
		{publicURL: "http://[::1]:8080", wantName: "grantline-session"},
		{publicURL: "http://grantline.example.com", wantErr: true},
		{publicURL: "http://10.0.0.5:8080", wantErr: true},
	} {
		cookies, err := session.CookiesFor(tc.publicURL)
		if tc.wantErr {
			if err == nil {
				t.Errorf("%s: plain http on a network accepted", tc.publicURL)
			}
			continue
		}
		rec := httptest.NewRecorder()
		cookies.Set(rec, cookies.SessionName(), "id", time.Now().Add(time.Hour))
		got := rec.Result().Cookies()[0]
		if err != nil || got.Name != tc.wantName || got.Secure != tc.wantSecure || !got.HttpOnly || got.SameSite != http.SameSiteLaxMode {
			t.Errorf("%s: cookie %q (%v), want %s, Secure %v, HttpOnly, SameSite=Lax", tc.publicURL, rec.Header().Get("Set-Cookie"), err, tc.wantName, tc.wantSecure)
		}
	}
}

// TestACrossSitePostIsRefused: a page on another site makes alice's browser post a withdrawal (with
// her cookie, as a browser would if SameSite did not stop it). The console refuses it before any call
// to a service, and her request stands; the same form from the console's own page works.
func TestACrossSitePostIsRefused(t *testing.T) {
	s := newSite(t)
	alice := s.signIn(t, "alice")
	id := alice.submit(analyticsForm("weekly revenue report"))
	for _, tc := range []struct{ name, origin, fetchSite string }{
		{"a browser that sends Sec-Fetch-Site", "http://evil.example", "cross-site"},
		{"another port of the same host (same site, another origin)", "http://127.0.0.1:1", "same-site"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := alice.postFrom("/requests/"+id+"/withdraw", url.Values{"reason": {"forged"}}, tc.origin, tc.fetchSite)
			if p.status != http.StatusForbidden || !strings.Contains(p.body, "Refused: sent from another site") {
				t.Fatalf("cross-site withdrawal answered %d: %s", p.status, p.body)
			}
			if status, v := s.view(t, "alice", id); status != http.StatusOK || v.Status != events.StatusSubmitted {
				t.Fatalf("after the refused post the request is %d %s", status, v.Status)
			}
		})
	}
	if p := alice.postFrom("/auth/logout", nil, "http://evil.example", "cross-site"); p.status != http.StatusForbidden {
		t.Fatalf("a cross-site sign-out answered %d", p.status)
	}
	if p := alice.get("/requests/" + id); p.status != http.StatusOK {
		t.Fatalf("alice was signed out by another site: %d", p.status)
	}
	if p := alice.post("/requests/"+id+"/withdraw", url.Values{"reason": {"not needed"}}); p.status != http.StatusSeeOther {
		t.Fatalf("the console's own withdrawal answered %d: %s", p.status, p.body)
	}
	if _, v := s.view(t, "alice", id); v.Status != events.StatusWithdrawn {
		t.Fatalf("after the console's own withdrawal the request is %s", v.Status)
	}
}

// TestASignedOutSessionCannotAct: after signing out, the old session cookie, replayed, acts on
// nothing: a form is refused with nothing done and a page sends the person to sign in.
func TestASignedOutSessionCannotAct(t *testing.T) {
	s := newSite(t)
	alice := s.signIn(t, "alice")
	id := alice.submit(analyticsForm("weekly revenue report"))
	old := alice.sessionCookie
	if p := alice.post("/auth/logout", nil); p.status != http.StatusSeeOther || p.header.Get("Location") != "/?notice=signed-out" {
		t.Fatalf("sign out: %d to %q", p.status, p.header.Get("Location"))
	}
	replay := s.browser(t)
	u, _ := url.Parse(s.url)
	replay.http.Jar.SetCookies(u, []*http.Cookie{{Name: old.Name, Value: old.Value, Path: "/"}})
	p := replay.post("/requests/"+id+"/withdraw", url.Values{"reason": {"replayed"}})
	if p.status != http.StatusUnauthorized || !strings.Contains(p.body, "nothing was done") {
		t.Fatalf("a withdrawal with the old cookie answered %d: %s", p.status, p.body)
	}
	if _, v := s.view(t, "alice", id); v.Status != events.StatusSubmitted {
		t.Fatalf("the replayed cookie withdrew the request: %s", v.Status)
	}
	if p := replay.post("/requests", analyticsForm("submitted with a dead session")); p.status != http.StatusUnauthorized {
		t.Fatalf("a submission with the old cookie answered %d", p.status)
	}
	if p := replay.get("/requests/" + id); p.status != http.StatusSeeOther || !strings.HasPrefix(p.header.Get("Location"), "/auth/login?return=") {
		t.Fatalf("a page with the old cookie answered %d to %q", p.status, p.header.Get("Location"))
	}
}

// TestOthersSeeARequestOnlyAsTheAPIsAllow: each person sees alice's request in the console exactly
// when intake's API shows it to them; to anyone else it does not exist, and its justification
// appears nowhere, not in the live stream either.
func TestOthersSeeARequestOnlyAsTheAPIsAllow(t *testing.T) {
	s := newSite(t)
	secret := "quarterly numbers before the board meeting"
	id := s.signIn(t, "alice").submit(analyticsForm(secret))
	for _, user := range []string{"alice", "bob", "carol", "dave", "erin", "frank"} {
		t.Run(user, func(t *testing.T) {
			apiStatus, _ := s.view(t, user, id)
			b := s.signIn(t, user)
			p := b.get("/requests/" + id)
			if p.status != apiStatus {
				t.Fatalf("the console answered %d, the API %d", p.status, apiStatus)
			}
			shown := strings.Contains(p.body, secret)
			if shown != (apiStatus == http.StatusOK) {
				t.Fatalf("API %d, yet the justification shown: %v\n%s", apiStatus, shown, p.body)
			}
			if apiStatus == http.StatusNotFound {
				if !strings.Contains(p.body, "There is no such request, or none you may see.") {
					t.Errorf("the refusal does not say so:\n%s", p.body)
				}
				if live := b.stream("/requests/"+id+"/live?version=0", "end"); strings.Contains(live, secret) {
					t.Errorf("the live stream of a hidden request: %q", live)
				}
				if w := b.post("/requests/"+id+"/withdraw", nil); w.status != http.StatusNotFound {
					t.Errorf("withdrawing someone else's hidden request answered %d", w.status)
				}
			}
		})
	}
	if status, v := s.view(t, "alice", id); status != http.StatusOK || v.Status != events.StatusSubmitted {
		t.Fatalf("after the others' attempts: %d %s", status, v.Status)
	}
}

// TestHTMLInAJustificationIsEscaped: markup typed into a justification is shown as text on the
// request page and in the live stream, never run.
func TestHTMLInAJustificationIsEscaped(t *testing.T) {
	s := newSite(t)
	alice := s.signIn(t, "alice")
	markup := `<script>alert("owned")</script><img src=x onerror=alert(1)> for the report`
	id := alice.submit(analyticsForm(markup))
	p := alice.get("/requests/" + id)
	if p.status != http.StatusOK {
		t.Fatalf("request page: %d", p.status)
	}
	for _, bad := range []string{`<script>alert`, `<img src=x`} {
		if strings.Contains(p.body, bad) {
			t.Errorf("the page carries the markup %q unescaped", bad)
		}
	}
	if !strings.Contains(p.body, `&lt;script&gt;alert(&#34;owned&#34;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt; for the report`) {
		t.Errorf("the justification is not shown as text:\n%s", p.body)
	}
	if live := alice.stream("/requests/"+id+"/live?version=0", "live"); strings.Contains(live, `<script>alert`) || !strings.Contains(live, `&lt;script&gt;`) {
		t.Errorf("the live stream carries the markup unescaped:\n%s", live)
	}
	scripts := regexp.MustCompile(`<script[^>]*>`).FindAllString(p.body, -1)
	for _, tag := range scripts {
		if !strings.Contains(tag, `src="/static/live.js"`) {
			t.Errorf("a script that is not the console's own file: %s", tag)
		}
	}
	if csp := p.header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
}

// TestACallbackMustBelongToThisBrowsersSignIn: the identity provider's answer is honoured once, in
// the browser that started the sign-in, with the state it was given; a sign-in never leaves the
// console afterwards.
func TestACallbackMustBelongToThisBrowsersSignIn(t *testing.T) {
	s := newSite(t)
	b := s.browser(t)
	start := b.get("/auth/login?return=//evil.example/phish")
	authorize, _ := url.Parse(start.header.Get("Location"))
	form := authorize.Query()
	form.Set("user", "alice")
	callback := b.postFrom(authorize.Scheme+"://"+authorize.Host+authorize.Path, form, s.url, "same-origin").header.Get("Location")

	stranger := s.browser(t)
	if p := stranger.get(callback); p.status != http.StatusBadRequest || !strings.Contains(p.body, "not started in this browser") {
		t.Errorf("another browser's callback answered %d: %s", p.status, p.body)
	}
	forged := strings.Replace(callback, "state=", "state=x", 1)
	if p := b.get(forged); p.status != http.StatusBadRequest || !strings.Contains(p.body, "state") {
		t.Errorf("a callback with another state answered %d: %s", p.status, p.body)
	}
	// The forged attempt spent this browser's sign-in: the genuine answer now finds none.
	if p := b.get(callback); p.status != http.StatusBadRequest {
		t.Errorf("a callback after its sign-in was spent answered %d", p.status)
	}

	b = s.browser(t)
	start = b.get("/auth/login?return=//evil.example/phish")
	authorize, _ = url.Parse(start.header.Get("Location"))
	form = authorize.Query()
	form.Set("user", "alice")
	callback = b.postFrom(authorize.Scheme+"://"+authorize.Host+authorize.Path, form, s.url, "same-origin").header.Get("Location")
	if p := b.get(callback); p.status != http.StatusSeeOther || p.header.Get("Location") != "/" {
		t.Errorf("signing in with a foreign return address went to %q (%d)", p.header.Get("Location"), p.status)
	}
	if p := b.get(callback); p.status != http.StatusBadRequest {
		t.Errorf("replaying the callback answered %d", p.status)
	}
}
