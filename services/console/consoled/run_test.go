package consoled_test

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/grantline/grantline/pkg/auth"
	"github.com/grantline/grantline/pkg/config"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/eventstore"
	"github.com/grantline/grantline/pkg/natsembed"
	"github.com/grantline/grantline/pkg/natstest"
	"github.com/grantline/grantline/pkg/poll"
	"github.com/grantline/grantline/pkg/topology"
	"github.com/grantline/grantline/services/console/consoled"
)

// TestRun starts the console the way grantline-console does, configured only through the
// environment, against a NATS server whose durability it checks over HTTP monitoring and the dev
// identity provider: it becomes ready, signs alice in (her session in the bucket) with the issuer's
// keys from GRANTLINE_OIDC_JWKS_URL, serves her a page, and stops cleanly with a live page open, which
// it ends rather than letting it hold the stop. The services' APIs answer 503 throughout, so the live
// page has nothing to show and stays open.
func TestRun(t *testing.T) {
	ctx := context.Background()
	ns, err := natsembed.Start(natsembed.Options{Dir: t.TempDir(), Port: -1, HTTPPort: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	_, js := natstest.Connect(t, ns.ClientURL())
	if err := eventstore.Provision(ctx, js, eventstore.DefaultSettings); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	intakeKey, _ := events.GenerateSigner(events.Intake, "intake-1")
	trust := filepath.Join(dir, "trust.json")
	sessionKey := filepath.Join(dir, "session.key")
	for path, content := range map[string]string{
		trust:      string(events.NewTrustFile(time.Now().Add(-time.Minute), intakeKey).Marshal()),
		sessionKey: strings.Repeat("5a", 32) + "\n",
	} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	directory, err := auth.LoadDirectory("../../../examples/directory.yaml")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	idp := httptest.NewServer(mux)
	t.Cleanup(idp.Close)
	issuer, err := auth.OpenDevIssuer(t.TempDir(), idp.URL+"/dev/oidc", "grantline", directory)
	if err != nil {
		t.Fatal(err)
	}
	mux.Handle("/dev/oidc/", http.StripPrefix("/dev/oidc", issuer.Handler()))
	mux.HandleFunc("/v1/", func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "down", http.StatusServiceUnavailable) })
	// The issuer's keys at an address of their own, as GRANTLINE_OIDC_JWKS_URL may name one.
	var keysAsked atomic.Int32
	mux.HandleFunc("GET /keys", func(w http.ResponseWriter, r *http.Request) {
		keysAsked.Add(1)
		r.URL.Path = "/jwks"
		issuer.Handler().ServeHTTP(w, r)
	})

	addr := freeAddr(t)
	consoleURL := "http://" + addr
	if err := issuer.AllowRedirect(consoleURL + "/auth/callback"); err != nil {
		t.Fatal(err)
	}
	cfg := consoled.Defaults()
	if err := config.Parse(&cfg, []string{
		"GRANTLINE_NATS_URL=" + ns.ClientURL(), "GRANTLINE_NATS_MONITOR_URLS=http://" + ns.MonitorAddr().String(),
		"GRANTLINE_HTTP_ADDR=" + addr, "GRANTLINE_TRUST_FILE=" + trust,
		"GRANTLINE_OIDC_ISSUER=" + idp.URL + "/dev/oidc", "GRANTLINE_OIDC_AUDIENCE=grantline", "GRANTLINE_OIDC_JWKS_URL=" + idp.URL + "/keys",
		"GRANTLINE_CONSOLE_PUBLIC_URL=" + consoleURL, "GRANTLINE_API_URL=" + idp.URL,
		"GRANTLINE_CATALOGUE=../../../examples/catalogue.yaml", "GRANTLINE_CONSOLE_SESSION_KEY_FILE=" + sessionKey,
	}); err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- consoled.Run(runCtx, cfg, slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})))
	}()
	t.Cleanup(func() { stop(); <-done })

	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(target string) (*http.Response, string) {
		t.Helper()
		resp, err := browser.Get(target)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	poll.Until(t, 20*time.Second, "/readyz", func() bool {
		select {
		case err := <-done:
			t.Fatalf("Run ended: %v", err)
		default:
		}
		resp, err := http.Get(consoleURL + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})

	// alice signs in through the identity provider's picker and lands on the catalogue.
	start, _ := get(consoleURL + "/auth/login?return=/catalogue")
	authorize, err := url.Parse(start.Header.Get("Location"))
	if start.StatusCode != http.StatusSeeOther || err != nil || !strings.HasPrefix(authorize.String(), idp.URL+"/dev/oidc/authorize") {
		t.Fatalf("sign-in start: %d to %q", start.StatusCode, start.Header.Get("Location"))
	}
	form := authorize.Query()
	form.Set("user", "alice")
	pick, _ := http.NewRequest(http.MethodPost, idp.URL+authorize.Path, strings.NewReader(form.Encode()))
	pick.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	pick.Header.Set("Origin", idp.URL)
	pick.Header.Set("Sec-Fetch-Site", "same-origin")
	picked, err := browser.Do(pick)
	if err != nil {
		t.Fatal(err)
	}
	picked.Body.Close()
	callback, body := get(picked.Header.Get("Location"))
	if callback.StatusCode != http.StatusSeeOther || callback.Header.Get("Location") != "/catalogue" {
		t.Fatalf("callback: %d to %q: %s", callback.StatusCode, callback.Header.Get("Location"), body)
	}
	if keysAsked.Load() == 0 {
		t.Error("the ID token was verified without asking GRANTLINE_OIDC_JWKS_URL for the keys")
	}
	page, body := get(consoleURL + "/catalogue")
	if page.StatusCode != http.StatusOK || !strings.Contains(body, "alice") || !strings.Contains(body, "payments-admin") {
		t.Fatalf("the catalogue as alice: %d\n%s", page.StatusCode, body)
	}
	sessions, err := js.KeyValue(ctx, topology.ConsoleSessionsBucket)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := sessions.ListKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var held []string
	for k := range keys.Keys() {
		if strings.HasPrefix(k, "session.") {
			held = append(held, k)
		}
	}
	if len(held) != 1 {
		t.Fatalf("the session bucket holds %d sessions, want alice's: %v", len(held), held)
	}

	// A live page open when the console stops: the stop ends its stream, well within the bound.
	live, err := browser.Get(consoleURL + "/requests/" + events.NewID() + "/live")
	if err != nil {
		t.Fatal(err)
	}
	defer live.Body.Close()
	if live.StatusCode != http.StatusOK || live.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("live stream: %d %s", live.StatusCode, live.Header.Get("Content-Type"))
	}
	ended := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(live.Body)
		for sc.Scan() {
			if sc.Text() == "event: end" {
				ended <- sc.Text()
				return
			}
		}
		ended <- "the stream closed without an end event"
	}()
	stop()
	select {
	case err := <-done:
		done <- err // for the clean-up
		if err != nil {
			t.Fatalf("Run after stop: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	if got := <-ended; got != "event: end" {
		t.Errorf("the live page at the stop: %s", got)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
