package consoled

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/brokeraccess"
	"github.com/grantline/grantline/pkg/catalogue"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/ops"
	"github.com/grantline/grantline/services/console/apiclient"
	"github.com/grantline/grantline/services/console/session"
	"github.com/grantline/grantline/services/console/signin"
	"github.com/grantline/grantline/services/console/web"
)

// Deps are the console's collaborators, built by New from Config (tests build them directly).
type Deps struct {
	// JS is the console's JetStream connection, for its session bucket only.
	JS        jetstream.JetStream
	Catalogue *catalogue.Catalogue
	// Trust checks the evidence shown to auditors (web.Config.Trust).
	Trust *events.Verifier
	// API says where the services are; its HTTP client makes every call.
	API apiclient.Config
	// PublicURL is the console's origin as browsers reach it.
	PublicURL string
	// Issuer, ClientID, GroupsClaim and JWKSURL say how people sign in (signin.Config).
	Issuer, ClientID, GroupsClaim, JWKSURL string
	SessionKey                             []byte
	SessionTTL                             time.Duration
	Replicas                               int
	// LiveInterval is how often live pages look for changes (web.Config); zero means the default.
	LiveInterval time.Duration
}

// Console is a built console: its handler, and what readiness and shutdown need.
type Console struct {
	Handler http.Handler
	pages   *web.Console
	flow    *signin.Flow
}

// Shutdown ends the live streams, so the HTTP server's graceful shutdown does not wait on them.
func (c *Console) Shutdown() { c.pages.Shutdown() }

// Ready reports whether the identity provider answers, for /readyz.
func (c *Console) Ready(ctx context.Context) error { return c.flow.Ready(ctx) }

// Build declares the session bucket and assembles the console. It does not contact the identity
// provider (see signin.New).
func (d Deps) Build(ctx context.Context, log *slog.Logger) (*Console, error) {
	cookies, err := session.CookiesFor(d.PublicURL)
	if err != nil {
		return nil, err
	}
	api, err := apiclient.New(d.API)
	if err != nil {
		return nil, err
	}
	sessions, err := session.Open(ctx, d.JS, session.Options{Key: d.SessionKey, Replicas: d.Replicas, MaxAge: d.SessionTTL})
	if err != nil {
		return nil, err
	}
	flow, err := signin.New(ctx, signin.Config{Issuer: d.Issuer, ClientID: d.ClientID, GroupsClaim: d.GroupsClaim,
		JWKSURL: d.JWKSURL, PublicURL: d.PublicURL, MaxAge: d.SessionTTL}, sessions, cookies, log)
	if err != nil {
		return nil, err
	}
	pages, err := web.New(web.Config{API: api, SignIn: flow, Catalogue: d.Catalogue, Trust: d.Trust, PublicURL: d.PublicURL,
		LiveInterval: d.LiveInterval, Log: log})
	if err != nil {
		return nil, err
	}
	h, err := pages.Handler()
	if err != nil {
		return nil, err
	}
	return &Console{Handler: h, pages: pages, flow: flow}, nil
}

// New builds the console from cfg on host (whose connection has no store: the console signs
// nothing): the catalogue, the trust file, the session key and bucket, the sign-in flow. It serves
// the console at / of the process's mux, so beside other services' APIs (grantline dev) it answers
// every path they do not; its readiness asks the identity provider's discovery document.
func New(ctx context.Context, cfg Config, host ops.Host) (ops.Service, error) {
	cat, err := catalogue.Load(cfg.Catalogue)
	if err != nil {
		return ops.Service{}, err
	}
	trust, err := events.LoadTrustFile(cfg.TrustFile)
	if err != nil {
		return ops.Service{}, err
	}
	key, err := ReadSessionKey(cfg.SessionKeyFile)
	if err != nil {
		return ops.Service{}, err
	}
	c, err := Deps{JS: host.Conn.JS, Catalogue: cat, Trust: trust, API: cfg.API(), PublicURL: cfg.PublicURL,
		Issuer: cfg.Issuer, ClientID: cfg.Audience, GroupsClaim: cfg.GroupsClaim, JWKSURL: cfg.JWKSURL,
		SessionKey: key, SessionTTL: cfg.SessionTTL, Replicas: cfg.Replicas}.Build(ctx, host.Log)
	if err != nil {
		return ops.Service{}, err
	}
	return ops.Service{Name: "console",
		Routes: func(mux *http.ServeMux) { mux.Handle("/", c.Handler) },
		Checks: map[string]ops.Check{"oidc": c.Ready},
		// Not a consumer: the stop begins by ending Consume, while the server still answers, so the
		// live pages' streams end then rather than holding the server's graceful shutdown to its end.
		Consume: func(ctx context.Context) error {
			<-ctx.Done()
			c.Shutdown()
			return nil
		},
	}, nil
}

// Run runs the console as a process of its own (grantline-console) until ctx ends.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	return ops.Run(ctx, cfg.Base, ops.ReadsAs(brokeraccess.Console), log,
		func(ctx context.Context, host ops.Host) (ops.Service, error) { return New(ctx, cfg, host) })
}
