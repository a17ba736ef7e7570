// Package gateway puts Grantline's separately deployed services behind one HTTP origin, as an ingress
// would in a cluster, so that people, the CLI and integrations need one address whatever the topology.
// It holds no state and makes no decisions: each route goes to the one service that owns it.
package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"time"
)

// Service names an upstream.
type Service string

// The services with an HTTP API. Policy has none: it only reacts to events. The notifier's (Slack's
// callbacks) is optional: a deployment without Slack approvals runs none.
const (
	Intake     Service = "intake"
	Approval   Service = "approval"
	Fulfilment Service = "fulfilment"
	Revoker    Service = "revoker"
	Query      Service = "query"
	Notifier   Service = "notifier"
	// Console is the web console, optional too: with it, every path the API and the gateway's own do
	// not take is its (its pages, sign-in, static files).
	Console Service = "console"
)

// Route sends one method and path pattern (net/http ServeMux syntax) to the service that serves it.
type Route struct {
	Pattern string
	Service Service
}

// Routes is the whole public API and its owners. A test checks each pattern against the owning
// service's own mux, so a route renamed there fails here rather than in front of a user.
var Routes = []Route{
	{"POST /v1/requests", Intake},
	{"POST /v1/request-batches", Intake},
	{"GET /v1/requests/{id}", Intake},
	{"POST /v1/requests/{id}/withdraw", Intake},
	{"GET /v1/requests", Query},
	{"GET /v1/requests/{id}/events", Query},
	{"GET /v1/grants", Query},
	{"GET /v1/audit/access", Query},
	{"GET /v1/findings", Query},
	{"GET /v1/reviews", Approval},
	{"POST /v1/requests/{id}/reviews", Approval},
	{"POST /v1/campaigns", Approval},
	{"GET /v1/campaigns", Approval},
	{"GET /v1/campaigns/{id}", Approval},
	{"POST /v1/campaigns/{id}/decisions", Approval},
	{"POST /v1/requests/{id}/post-review", Approval},
	{"GET /v1/tasks", Fulfilment},
	{"POST /v1/tasks/{id}/complete", Fulfilment},
	{"GET /v1/requests/{id}/credential", Fulfilment},
	{"POST /v1/requests/{id}/revoke", Revoker},
	{"POST /v1/revoke-tasks/{id}/complete", Revoker},
	{"POST /v1/locks", Revoker},
	{"GET /v1/locks", Revoker},
	{"POST /v1/locks/{id}/remove", Revoker},
	{"POST /v1/slack/interactions", Notifier},
}

// Config is where the services are, and what else the origin serves.
type Config struct {
	// Upstreams holds each API service's URL, and the console's if there is one.
	Upstreams map[Service]*url.URL
	// DevIssuer, when set, serves a development OIDC issuer's metadata under /dev/oidc/, so tokens
	// minted by `grantline dev token` verify against this origin as they do against `grantline dev`.
	DevIssuer http.Handler
	Log       *slog.Logger
	// Client asks the upstreams whether they are ready; defaults to one with a 10s timeout.
	Client *http.Client
}

// New returns the origin's handler: the routes, /livez, /readyz (each route's readiness, see
// serveReady) and /readyz/{service}, and, with a console upstream, the console at /. Every service but the
// notifier and the console needs an upstream; without one for the notifier, its routes answer 502.
func New(cfg Config) (http.Handler, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 10 * time.Second}
	}
	var missing []error
	for _, s := range []Service{Intake, Approval, Fulfilment, Revoker, Query} {
		if cfg.Upstreams[s] == nil {
			missing = append(missing, fmt.Errorf("no upstream URL for %s", s))
		}
	}
	if err := errors.Join(missing...); err != nil {
		return nil, err
	}
	proxies := map[Service]*httputil.ReverseProxy{}
	for s, u := range cfg.Upstreams {
		proxies[s] = proxyTo(s, u, cfg.Log)
	}
	mux := http.NewServeMux()
	for _, r := range Routes {
		proxy, ok := proxies[r.Service]
		if !ok {
			mux.HandleFunc(r.Pattern, func(w http.ResponseWriter, _ *http.Request) { writeUnavailable(w, r.Service) })
			continue
		}
		mux.Handle(r.Pattern, proxy)
	}
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) { serveReady(w, r, cfg) })
	mux.HandleFunc("GET /readyz/{service}", func(w http.ResponseWriter, r *http.Request) {
		s := Service(r.PathValue("service"))
		u, ok := cfg.Upstreams[s]
		if !ok {
			http.NotFound(w, r)
			return
		}
		if err := readyz(r.Context(), cfg.Client, u.JoinPath("/readyz").String()); err != nil {
			http.Error(w, fmt.Sprintf("%s: %v", s, err), http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok\n")
	})
	if cfg.DevIssuer != nil {
		mux.Handle("/dev/oidc/", http.StripPrefix("/dev/oidc", cfg.DevIssuer))
	}
	if p, ok := proxies[Console]; ok {
		mux.Handle("/", p)
	}
	return mux, nil
}

func proxyTo(s Service, u *url.URL, log *slog.Logger) *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(u)
			r.SetXForwarded()
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			log.Warn("upstream unreachable", "service", string(s), "path", r.URL.Path, "error", err.Error())
			writeUnavailable(w, s)
		},
	}
}

// writeUnavailable answers in the services' own problem format, so a client handles one shape of error.
func writeUnavailable(w http.ResponseWriter, s Service) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(http.StatusBadGateway)
	fmt.Fprintf(w, `{"type":"https://grantline.dev/problems/upstream-unavailable","title":"The %s service is unreachable","status":502}`+"\n", s)
}

// Readiness is the gateway's /readyz body: each upstream's readiness and, from it, each route's ("ok"
// or why not).
type Readiness struct {
	Services map[Service]string `json:"services"`
	Routes   map[string]string  `json:"routes"`
}

// serveReady answers /readyz per route rather than all or nothing: 200 while any upstream is ready,
// so a load balancer keeps sending what still works (submissions while the approval database is down),
// 503 only when none is; the body says which routes are not ready and why. A load balancer that checks
// per route uses /readyz/{service}.
func serveReady(w http.ResponseWriter, r *http.Request, cfg Config) {
	rd := ready(r.Context(), cfg)
	status := http.StatusServiceUnavailable
	for _, state := range rd.Services {
		if state == "ok" {
			status = http.StatusOK
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(rd)
}

// ready asks every upstream's /readyz at once.
func ready(ctx context.Context, cfg Config) Readiness {
	rd := Readiness{Services: map[Service]string{}, Routes: map[string]string{}}
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	for s, u := range cfg.Upstreams {
		wg.Go(func() {
			state := "ok"
			if err := readyz(ctx, cfg.Client, u.JoinPath("/readyz").String()); err != nil {
				state = err.Error()
			}
			mu.Lock()
			rd.Services[s] = state
			mu.Unlock()
		})
	}
	wg.Wait()
	for _, route := range Routes {
		state, ok := rd.Services[route.Service]
		if !ok {
			state = "no upstream"
		}
		rd.Routes[route.Pattern] = state
	}
	return rd
}

func readyz(ctx context.Context, c *http.Client, u string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("readyz answered %s", resp.Status)
	}
	return nil
}
