// Package web is the console's HTTP interface: server-rendered pages (html/template) that work without
// JavaScript, with one small script for live updates over Server-Sent Events. Every page is what the
// services' HTTP APIs answer the signed-in person (package apiclient), and every form is a call to
// those APIs with that person's token: the console grants, refuses and hides nothing itself.
//
// Every answer carries a strict Content-Security-Policy (scripts and styles from this origin only, no
// inline script), every state-changing request must come from this origin (net/http's
// CrossOriginProtection), and pages are never stored by caches.
package web

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/grantline/grantline/pkg/catalogue"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/services/console"
	"github.com/grantline/grantline/services/console/apiclient"
	"github.com/grantline/grantline/services/console/session"
	"github.com/grantline/grantline/services/console/signin"
)

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed static
var staticFiles embed.FS

// csp allows this origin's own script and style, and nothing inline; forms post only here, and no
// other site may frame the console.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// Config is what the console needs.
type Config struct {
	// API calls the services as the signed-in person.
	API *apiclient.Client
	// SignIn signs people in and finds their session.
	SignIn *signin.Flow
	// Catalogue is the entitlement catalogue people browse and ask from.
	Catalogue *catalogue.Catalogue
	// Trust checks the events an auditor is shown, beside the read side's own verification
	// (console.Evidence).
	Trust *events.Verifier
	// PublicURL is the console's origin as browsers reach it; forms sent from it are accepted even
	// when a proxy in between changes the Host header.
	PublicURL string
	// LiveInterval is how often a live request page asks the services for changes (default 1s).
	LiveInterval time.Duration
	Log          *slog.Logger
}

// Console serves the pages.
type Console struct {
	cfg   Config
	pages map[string]*template.Template
	// stop ends the live streams, which would otherwise hold a shutdown until its timeout.
	stop     chan struct{}
	stopOnce sync.Once
}

// pageNames are the templates under templates/, each rendered inside layout.html.
var pageNames = []string{"home", "catalogue", "request_new", "request_several", "request", "credential", "reviews", "tasks", "audit", "audit_request", "error"}

// New returns the console for cfg. It fails if a template does not parse or the public URL is not an
// origin.
func New(cfg Config) (*Console, error) {
	if cfg.API == nil || cfg.SignIn == nil || cfg.Catalogue == nil || cfg.Trust == nil {
		return nil, errors.New("console: API, SignIn, Catalogue and Trust are required")
	}
	if cfg.LiveInterval <= 0 {
		cfg.LiveInterval = time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	c := &Console{cfg: cfg, pages: map[string]*template.Template{}, stop: make(chan struct{})}
	for _, name := range pageNames {
		t, err := template.New(name).Funcs(funcs).ParseFS(templateFiles, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("console: template %s: %w", name, err)
		}
		c.pages[name] = t
	}
	return c, nil
}

// Shutdown ends every live stream, so an HTTP server's graceful shutdown does not wait on them. Call
// it once, before shutting the server down.
func (c *Console) Shutdown() { c.stopOnce.Do(func() { close(c.stop) }) }

// Handler serves the console: its pages, sign-in, and static files, with the security headers on
// every answer and cross-origin protection on every state-changing request. Mounted at "/" beside the
// services' APIs (grantline dev) it answers every path they do not.
func (c *Console) Handler() (http.Handler, error) {
	mux := http.NewServeMux()
	static, _ := fs.Sub(staticFiles, "static")
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	mux.HandleFunc("GET "+signin.LoginPath, c.login)
	mux.HandleFunc("GET "+signin.CallbackPath, c.callback)
	mux.HandleFunc("POST "+signin.LogoutPath, c.logout)
	mux.HandleFunc("GET /{$}", c.home)
	mux.HandleFunc("GET /catalogue", c.private(c.catalogue))
	mux.HandleFunc("GET /requests/new", c.private(c.requestForm))
	mux.HandleFunc("POST /requests", c.private(c.submit))
	mux.HandleFunc("GET /requests/several", c.private(c.severalForm))
	mux.HandleFunc("POST /requests/several", c.private(c.submitSeveral))
	mux.HandleFunc("GET /requests/{id}", c.private(c.request))
	mux.HandleFunc("GET /requests/{id}/live", c.private(c.liveStream))
	mux.HandleFunc("POST /requests/{id}/withdraw", c.private(c.withdraw))
	mux.HandleFunc("POST /requests/{id}/revoke", c.private(c.revoke))
	mux.HandleFunc("GET /requests/{id}/credential", c.private(c.credentialForm))
	mux.HandleFunc("POST /requests/{id}/credential", c.private(c.credential))
	mux.HandleFunc("POST /requests/{id}/review", c.private(c.review))
	mux.HandleFunc("POST /requests/{id}/post-review", c.private(c.postReview))
	mux.HandleFunc("GET /reviews", c.private(c.reviews))
	mux.HandleFunc("GET /tasks", c.private(c.tasks))
	mux.HandleFunc("POST /tasks/{id}/complete", c.private(c.completeTask))
	mux.HandleFunc("GET /audit", c.private(c.audit))
	mux.HandleFunc("GET /audit/requests/{id}", c.private(c.auditRequest))
	mux.HandleFunc("GET /audit/requests/{id}/evidence", c.private(c.evidence))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		c.renderError(w, r, http.StatusNotFound, "Not found", "There is no such page.")
	})

	cop := http.NewCrossOriginProtection()
	if c.cfg.PublicURL != "" {
		if err := cop.AddTrustedOrigin(strings.TrimSuffix(c.cfg.PublicURL, "/")); err != nil {
			return nil, fmt.Errorf("console: public URL: %w", err)
		}
	}
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.cfg.Log.Warn("cross-origin request refused", "method", r.Method, "path", r.URL.Path,
			"origin", r.Header.Get("Origin"), "sec_fetch_site", r.Header.Get("Sec-Fetch-Site"))
		c.renderError(w, r, http.StatusForbidden, "Refused: sent from another site",
			"This form was not sent from the console's own pages, so nothing was done.")
	}))
	return headers(cop.Handler(mux)), nil
}

// headers sets what every answer carries: the content security policy, no sniffing, no caching of
// pages (which show people's access and, once, credentials), and no referrer beyond this origin.
func headers(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		if strings.HasPrefix(r.URL.Path, "/static/") {
			h.Set("Cache-Control", "no-cache")
		} else {
			h.Set("Cache-Control", "no-store")
		}
		next.ServeHTTP(w, r)
	})
}

// private serves h to a signed-in person. A signed-out person is sent to sign in when they asked to
// see a page, and refused, with nothing done, when they sent a form.
func (c *Console) private(h func(http.ResponseWriter, *http.Request, session.Session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, _, ok := c.cfg.SignIn.Current(r)
		if ok {
			h(w, r, s)
			return
		}
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			http.Redirect(w, r, signin.LoginPath+"?"+url.Values{"return": {r.URL.RequestURI()}}.Encode(), http.StatusSeeOther)
			return
		}
		c.renderError(w, r, http.StatusUnauthorized, "Signed out",
			"Your session has ended or you signed out, so nothing was done. Sign in and try again.")
	}
}

// frame is what the layout shows around every page.
type frame struct {
	Title   string
	Session *session.Session
	// Notice is a confirmation of what was just done.
	Notice string
	// Refusal is what a service answered when it refused the page's action.
	Refusal *apiclient.Problem
}

func (c *Console) frame(r *http.Request, title string, s *session.Session) frame {
	return frame{Title: title, Session: s, Notice: notices[r.URL.Query().Get("notice")]}
}

// notices are the confirmations a redirect after an action may name; only these texts can appear.
var notices = map[string]string{
	"signed-out":    "You are signed out.",
	"submitted":     "Your request was submitted. Policy decides next; this page follows it as it happens.",
	"withdrawn":     "The request was withdrawn.",
	"revoked":       "Ending the access was asked for; the revoker removes it and records what the target shows.",
	"reviewed":      "Your review was recorded.",
	"post-reviewed": "Your post-review was recorded.",
	"completed":     "The task was completed with your evidence.",
}

// render writes page name with data and status.
func (c *Console) render(w http.ResponseWriter, status int, name string, data any) {
	var buf bytes.Buffer
	if err := c.pages[name].ExecuteTemplate(&buf, "layout", data); err != nil {
		c.cfg.Log.Error("render page", "page", name, "error", err.Error())
		http.Error(w, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = buf.WriteTo(w)
}

type errorPage struct {
	frame
	Heading, Message string
	// SignIn offers to sign in (again).
	SignIn bool
}

func (c *Console) renderError(w http.ResponseWriter, r *http.Request, status int, heading, message string) {
	p := errorPage{frame: c.frame(r, heading, nil), Heading: heading, Message: message, SignIn: status == http.StatusUnauthorized}
	if s, _, ok := c.cfg.SignIn.Current(r); ok {
		p.Session = &s
	}
	c.render(w, status, "error", p)
}

// failed shows a service's refusal or unavailability as the page. A token the services no longer
// accept ends the session.
func (c *Console) failed(w http.ResponseWriter, r *http.Request, what string, err error) {
	p, ok := apiclient.AsProblem(err)
	switch {
	case ok && p.Status == http.StatusUnauthorized:
		_ = c.cfg.SignIn.SignOut(w, r)
		c.renderError(w, r, http.StatusUnauthorized, "Signed out", "The services no longer accept your sign-in. Sign in again.")
	case ok && p.Status == http.StatusNotFound:
		c.renderError(w, r, http.StatusNotFound, p.Title, "There is no such request, or none you may see.")
	case ok:
		c.renderError(w, r, p.Status, p.Title, p.Detail)
	default:
		c.cfg.Log.Error(what, "error", err.Error())
		c.renderError(w, r, http.StatusBadGateway, "A service is unavailable", "The console could not reach the service that answers this page. Try again shortly.")
	}
}

// refusal returns the service's refusal in err, or logs err and describes it as an outage.
func (c *Console) refusal(what string, err error) *apiclient.Problem {
	if p, ok := apiclient.AsProblem(err); ok {
		return p
	}
	c.cfg.Log.Error(what, "error", err.Error())
	p := &apiclient.Problem{Status: http.StatusBadGateway}
	p.Title = "A service is unavailable"
	p.Detail = "Nothing was done; try again shortly."
	return p
}

// funcs are the templates' helpers.
var funcs = template.FuncMap{
	// actionKey names one action of the person's: a form rendered once, however often it is sent.
	"actionKey": session.NewID,
	"time": func(t any) string {
		switch v := t.(type) {
		case time.Time:
			if v.IsZero() {
				return ""
			}
			return v.UTC().Format(console.TimeLayout)
		case *time.Time:
			if v == nil {
				return ""
			}
			return v.UTC().Format(console.TimeLayout)
		}
		return fmt.Sprint(t)
	},
	"isotime": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"status":  console.StatusLabel,
	"seconds": console.Duration,
	"join":    strings.Join,
	"inc":     func(i int) int { return i + 1 },
	"has":     slices.Contains[[]string],
	"dur":     func(d catalogue.Duration) string { return console.Duration(int64(d.Std().Seconds())) },
}

// callWithin bounds one page's calls to the services.
func callWithin(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, 20*time.Second)
}
