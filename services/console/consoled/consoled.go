package consoled

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/brokeraccess"
	"github.com/grantline/grantline/pkg/catalogue"
	"github.com/grantline/grantline/pkg/ops"
	"github.com/grantline/grantline/services/console/apiclient"
	"github.com/grantline/grantline/services/console/session"
	"github.com/grantline/grantline/services/console/signin"
	"github.com/grantline/grantline/services/console/web"
)

// Deps are the console's collaborators, built by Run from Config or by `grantline dev` in process.
type Deps struct {
	// JS is the console's JetStream connection, for its session bucket only.
	JS        jetstream.JetStream
	Catalogue *catalogue.Catalogue
	// API says where the services are; its HTTP client makes every call.
	API apiclient.Config
	// PublicURL is the console's origin as browsers reach it.
	PublicURL string
	// Issuer, ClientID and GroupsClaim say how people sign in (signin.Config).
	Issuer, ClientID, GroupsClaim string
	SessionKey                    []byte
	SessionTTL                    time.Duration
	Replicas                      int
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
		PublicURL: d.PublicURL, MaxAge: d.SessionTTL}, sessions, cookies, log)
	if err != nil {
		return nil, err
	}
	pages, err := web.New(web.Config{API: api, SignIn: flow, Catalogue: d.Catalogue, PublicURL: d.PublicURL, LiveInterval: d.LiveInterval, Log: log})
	if err != nil {
		return nil, err
	}
	h, err := pages.Handler()
	if err != nil {
		return nil, err
	}
	return &Console{Handler: h, pages: pages, flow: flow}, nil
}

// Run builds the console from cfg and serves it until ctx ends.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	log.Info("starting", "config", cfg)
	cat, err := catalogue.Load(cfg.Catalogue)
	if err != nil {
		return err
	}
	opts, err := brokeraccess.ClientOptions(brokeraccess.Console, cfg.NATSNKeyFile)
	if err != nil {
		return err
	}
	nc, err := nats.Connect(cfg.NATSURL, append(opts, nats.Name("grantline-console"), nats.MaxReconnects(-1))...)
	if err != nil {
		return fmt.Errorf("connect to NATS at %s: %w", cfg.NATSURL, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	c, err := Deps{JS: js, Catalogue: cat, API: apiclient.Config{BaseURL: cfg.APIURL, ServiceURLs: cfg.ServiceURLs},
		PublicURL: cfg.PublicURL, Issuer: cfg.OIDCIssuer, ClientID: cfg.OIDCAudience, GroupsClaim: cfg.OIDCGroupsClaim,
		SessionKey: cfg.SessionKey, SessionTTL: cfg.SessionTTL, Replicas: cfg.Replicas}.Build(ctx, log)
	if err != nil {
		return err
	}
	go func() {
		<-ctx.Done()
		c.Shutdown()
	}()
	return ops.RunService(ctx, ops.Service{
		Name: "console", Addr: cfg.HTTPAddr,
		Checks: map[string]ops.Check{"nats": ops.NATSCheck(nc), "oidc": c.Ready},
		Routes: func(mux *http.ServeMux) { mux.Handle("/", c.Handler) },
	}, log)
}
