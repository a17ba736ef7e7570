package web_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json/v2"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/grantline/grantline/api"
	"github.com/grantline/grantline/pkg/auth"
	"github.com/grantline/grantline/pkg/catalogue"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/eventstore"
	"github.com/grantline/grantline/pkg/idempotency"
	"github.com/grantline/grantline/pkg/natstest"
	"github.com/grantline/grantline/pkg/requestview"
	"github.com/grantline/grantline/pkg/topology"
	"github.com/grantline/grantline/services/console/apiclient"
	"github.com/grantline/grantline/services/console/consoled"
	"github.com/grantline/grantline/services/console/session"
	"github.com/grantline/grantline/services/intake/intaked"
)

// site is the console on one origin with what it needs of the real system: intake's API over a real
// JetStream stream, and the dev identity issuer over the demo directory (alice, bob, carol, dave,
// erin, frank) with its sign-in endpoints, as grantline dev serves them. The console's calls go
// through api.Client, so every one is checked against the HTTP contract. Nothing else runs: policy
// never decides, so requests stay submitted.
type site struct {
	url    string
	issuer *auth.DevIssuer
	store  *eventstore.Store
}

func newSite(t *testing.T) *site {
	t.Helper()
	ctx := context.Background()
	ns := natstest.RunServer(t)
	_, js := natstest.Connect(t, ns.ClientURL())
	if err := eventstore.Provision(ctx, js, eventstore.DefaultSettings); err != nil {
		t.Fatal(err)
	}
	signer, _ := events.GenerateSigner(events.Intake, "intake-test")
	verifier, _ := events.NewVerifier(events.NewTrustFile(time.Now().Add(-time.Minute), signer))
	store, err := eventstore.Open(ctx, js, eventstore.Config{Signer: signer, Verifier: verifier, Durability: eventstore.EmbeddedProbe(ns)})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := idempotency.Open(ctx, js, topology.IdempotencyBucket, "requests", 1)
	if err != nil {
		t.Fatal(err)
	}
	cat, err := catalogue.Load("../../../examples/catalogue.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir, err := auth.LoadDirectory("../../../examples/directory.yaml")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	s := &site{url: srv.URL, store: store}
	if s.issuer, err = auth.OpenDevIssuer(t.TempDir(), srv.URL+"/dev/oidc", "grantline", dir); err != nil {
		t.Fatal(err)
	}
	if err := s.issuer.AllowRedirect(srv.URL + "/auth/callback"); err != nil {
		t.Fatal(err)
	}
	mux.Handle("/dev/oidc/", http.StripPrefix("/dev/oidc", s.issuer.Handler()))
	authn, err := auth.NewVerifier(ctx, s.issuer.VerifierConfig())
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	intake := intaked.Deps{JS: js, Store: store, Catalogue: cat, Auth: authn, Idempotency: keys, Now: time.Now, ReaderGroups: []string{"auditors", "security"}}
	intake.API(log).Routes(mux)

	key := make([]byte, session.KeySize)
	_, _ = rand.Read(key)
	c, err := consoled.Deps{JS: js, Catalogue: cat, Trust: verifier, API: apiclient.Config{BaseURL: srv.URL, HTTP: api.Client(t)}, PublicURL: srv.URL,
		Issuer: srv.URL + "/dev/oidc", ClientID: "grantline", SessionKey: key, SessionTTL: time.Hour, Replicas: 1,
		LiveInterval: 50 * time.Millisecond}.Build(ctx, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Shutdown)
	mux.Handle("/", c.Handler)
	return s
}

// browser is a person's browser: it keeps cookies and shows each redirect instead of following it.
type browser struct {
	t    *testing.T
	site *site
	http *http.Client
	// sessionCookie is the Set-Cookie header that started the session.
	sessionCookie *http.Cookie
}

func (s *site) browser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, site: s, http: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// page is one answer as the browser got it.
type page struct {
	status int
	header http.Header
	body   string
}

func (b *browser) do(req *http.Request) page {
	b.t.Helper()
	resp, err := b.http.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return page{status: resp.StatusCode, header: resp.Header, body: string(body)}
}

func (b *browser) get(path string) page {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, b.abs(path), nil)
	return b.do(req)
}

// post sends a form as the console's own pages do: same-origin, as a browser says (Sec-Fetch-Site and
// Origin).
func (b *browser) post(path string, form url.Values) page {
	b.t.Helper()
	return b.postFrom(path, form, b.site.url, "same-origin")
}

// postFrom sends a form as a page of origin would, with the Sec-Fetch-Site a browser would set.
func (b *browser) postFrom(path string, form url.Values, origin, fetchSite string) page {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, b.abs(path), strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", origin)
	req.Header.Set("Sec-Fetch-Site", fetchSite)
	return b.do(req)
}

func (b *browser) abs(path string) string {
	if strings.HasPrefix(path, "http") {
		return path
	}
	return b.site.url + path
}

// signIn signs the browser in as user through the dev issuer's picker, returning to the catalogue.
func (s *site) signIn(t *testing.T, user string) *browser {
	t.Helper()
	b := s.browser(t)
	start := b.get("/auth/login?return=/catalogue")
	if start.status != http.StatusSeeOther {
		t.Fatalf("sign-in start: %d %s", start.status, start.body)
	}
	authorize, _ := url.Parse(start.header.Get("Location"))
	if picker := b.get(authorize.String()); picker.status != http.StatusOK || !strings.Contains(picker.body, "("+user+")") {
		t.Fatalf("the identity provider's picker: %d %s", picker.status, picker.body)
	}
	form := authorize.Query()
	form.Set("user", user)
	picked := b.postFrom(authorize.Scheme+"://"+authorize.Host+authorize.Path, form, s.url, "same-origin")
	if picked.status != http.StatusSeeOther {
		t.Fatalf("picking %s: %d %s", user, picked.status, picked.body)
	}
	req, _ := http.NewRequest(http.MethodGet, picked.header.Get("Location"), nil)
	resp, err := b.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/catalogue" {
		t.Fatalf("callback: %d to %q: %s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	for _, c := range resp.Cookies() {
		if c.Name == "grantline-session" {
			b.sessionCookie = c
		}
	}
	if b.sessionCookie == nil {
		t.Fatalf("no session cookie after signing in; Set-Cookie %q", resp.Header.Values("Set-Cookie"))
	}
	return b
}

// stream reads the Server-Sent Events at path until an event named until has arrived whole, and
// returns what was read. It reports failures with Errorf, so it may run on another goroutine.
func (b *browser) stream(path, until string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.t.Context(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, b.abs(path), nil)
	resp, err := b.http.Do(req)
	if err != nil {
		b.t.Error(err)
		return ""
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		b.t.Errorf("%s answered %d %s", path, resp.StatusCode, ct)
		return ""
	}
	var read strings.Builder
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	inUntil := false
	for sc.Scan() {
		line := sc.Text()
		read.WriteString(line + "\n")
		switch {
		case line == "event: "+until:
			inUntil = true
		case line == "" && inUntil:
			return read.String()
		}
	}
	b.t.Errorf("the stream %s ended without a %q event (%v):\n%s", path, until, sc.Err(), read.String())
	return read.String()
}

var requestLink = regexp.MustCompile(`^/requests/([0-9A-Z]{26})\?notice=submitted$`)

// submit asks for access through the console's form and returns the request's ID.
func (b *browser) submit(form url.Values) string {
	b.t.Helper()
	p := b.post("/requests", form)
	m := requestLink.FindStringSubmatch(p.header.Get("Location"))
	if p.status != http.StatusSeeOther || m == nil {
		b.t.Fatalf("submit: %d to %q: %s", p.status, p.header.Get("Location"), p.body)
	}
	return m[1]
}

func analyticsForm(justification string) url.Values {
	return url.Values{"entitlement": {"analytics-read"}, "justification": {justification}, "duration": {"2h"},
		"idempotency_key": {session.NewID()}}
}

// view asks intake directly, as user, for request id: the API's answer the console must agree with.
func (s *site) view(t *testing.T, user, id string) (int, requestview.View) {
	t.Helper()
	tok, err := s.issuer.Mint(user, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, s.url+"/v1/requests/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := api.Client(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v requestview.View
	if resp.StatusCode == http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatal(err)
		}
	}
	return resp.StatusCode, v
}
