// Package consoletest drives the web console in a real Chromium (chromedp), against the whole system
// as grantline dev runs it: the console on the one origin beside every service, the dev identity
// issuer, NATS JetStream and PostgreSQL. The tests check what the pages show, as a person reads them.
package consoletest

import (
	"context"
	"encoding/json"
	"flag"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/grantline/grantline/cmd/grantline/internal/devmode"
	"github.com/grantline/grantline/pkg/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

// screenshots, when set, writes the pages the scenario visits to docs/console/*.png (see the README).
var screenshots = flag.Bool("screenshots", false, "write the console's screenshots to docs/console/")

// stepTimeout bounds each wait for what a page should show; the system acts within a few seconds.
const stepTimeout = 30 * time.Second

// startDev starts grantline dev on free ports with a fresh database, as `make dev` would run it.
func startDev(t *testing.T) *devmode.Env {
	t.Helper()
	cfg := devmode.Config{DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", NATSPort: -1, NATSMonitorPort: -1,
		Examples: "../../../../examples", DatabaseURL: pgtest.New(t)}
	e, err := devmode.Start(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("start dev: %v", err)
	}
	t.Cleanup(func() { e.Close(context.Background()) })
	// Runs before the close: the console, like every service, did nothing its NATS user may not.
	t.Cleanup(func() {
		if v := e.PermissionViolations(); len(v) > 0 {
			t.Errorf("the broker refused the services %d times:\n%s", len(v), strings.Join(v, "\n"))
		}
	})
	return e
}

// startBrowser starts one headless Chromium for the test (Debian's chromium, which make deps
// installs); each person then gets a browser context of their own, with their own cookies.
func startBrowser(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("Chromium is not installed (run make deps, or scripts/install-deps.sh as root): %v", err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.WindowSize(1280, 900),
		// As root (CI, containers) Chromium refuses to start with its sandbox.
		chromedp.NoSandbox)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	browser, cancelBrowser := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancelBrowser(); cancelAlloc() })
	if err := chromedp.Do(browser, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	return browser
}

// person is someone at their own browser window.
type person struct {
	t    *testing.T
	name string
	ctx  context.Context
	base string
}

func newPerson(t *testing.T, browser context.Context, base, name string, opts ...chromedp.ContextOption) *person {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser, append([]chromedp.ContextOption{chromedp.WithNewBrowserContext()}, opts...)...)
	t.Cleanup(cancel)
	// The first action on a context opens its tab for the context's life: never under a timeout.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("open %s's window: %v", name, err)
	}
	return &person{t: t, name: name, ctx: ctx, base: base}
}

// do runs steps, failing the test with what the person was doing.
func (p *person) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		p.t.Fatalf("%s: %s: %v\nat %s the page shows:\n%s", p.name, what, err, p.where(), p.text("body"))
	}
}

// open goes to a page of the console.
func (p *person) open(path string) {
	p.t.Helper()
	p.do("open "+path, chromedp.Navigate(p.base+path), chromedp.WaitReady(chromedp.CSS("main")))
}

// text is what the first element matching css shows, or "" if there is none.
func (p *person) text(css string) string {
	ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
	defer cancel()
	s, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`(document.querySelector(`+quote(css)+`) || {innerText: ""}).innerText`))
	return s
}

// sees waits until the first element matching css shows want (the page may change live meanwhile).
func (p *person) sees(css, want string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, stepTimeout)
	defer cancel()
	expr := `(() => { const el = document.querySelector(` + quote(css) + `); return !!el && el.innerText.includes(` + quote(want) + `); })()`
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
		p.t.Fatalf("%s never saw %q in %s: %v\nthe page shows:\n%s", p.name, want, css, err, p.text("main"))
	}
}

// signIn signs in through the dev identity provider's picker and lands on the console's home page.
func (p *person) signIn() {
	p.t.Helper()
	p.open("/")
	p.do("go to the identity provider", chromedp.Click(chromedp.CSS(`a.button[href="/auth/login"]`)),
		chromedp.WaitVisible(chromedp.CSS(`button[value="`+p.name+`"]`)))
	p.do("pick "+p.name, chromedp.Click(chromedp.CSS(`button[value="`+p.name+`"]`)),
		chromedp.WaitVisible(chromedp.CSS(`form.who`)))
	p.sees("form.who", "Signed in as")
}

// fill types value into the field with id.
func (p *person) fill(id, value string) {
	p.t.Helper()
	p.do("fill "+id, chromedp.SetValue(chromedp.ID(id), value))
}

// where is the page's address, for failure messages.
func (p *person) where() string {
	ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
	defer cancel()
	u, _ := chromedp.Run(ctx, chromedp.Location())
	return u
}

// location is the page's address, relative to the console.
func (p *person) location() string {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
	defer cancel()
	u, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		p.t.Fatal(err)
	}
	return strings.TrimPrefix(u, p.base)
}

// eval evaluates a JavaScript expression on the page.
func eval[T any](p *person, expr string, opts ...chromedp.EvaluateOption) T {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, opts...))
	if err != nil {
		p.t.Fatalf("%s: evaluate %s: %v", p.name, expr, err)
	}
	return v
}

// readableAt checks the page at a phone's width: nothing wider than the viewport, so nobody scrolls
// sideways to read (tables scroll inside their own box). With shot set, that is the screenshot's name.
func (p *person) readableAt(width int64, what, shot string) {
	p.t.Helper()
	p.do("narrow the window", chromedp.EmulateViewport(width, 800))
	defer p.do("widen the window", chromedp.EmulateViewport(1280, 900))
	if w := eval[int64](p, `document.documentElement.scrollWidth`); w > width {
		p.t.Errorf("%s at %d px is %d px wide: it scrolls sideways", what, width, w)
	}
	if shot != "" {
		p.shot(shot)
	}
}

// shot writes a screenshot of the page to docs/console/<name>.png when -screenshots is set.
func (p *person) shot(name string) {
	p.t.Helper()
	if !*screenshots {
		return
	}
	ctx, cancel := context.WithTimeout(p.ctx, stepTimeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		p.t.Fatalf("screenshot %s: %v", name, err)
	}
	dir := filepath.Join("..", "..", "..", "..", "docs", "console")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		p.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		p.t.Fatal(err)
	}
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
