package intaked

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/auth"
	"github.com/grantline/grantline/pkg/catalogue"
	"github.com/grantline/grantline/pkg/consumer"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/eventstore"
	"github.com/grantline/grantline/pkg/ops"
	"github.com/grantline/grantline/services/intake"
	"github.com/grantline/grantline/services/intake/httpapi"
	"github.com/grantline/grantline/services/intake/idempotency"
	"github.com/grantline/grantline/services/intake/integration"
)

// Deps are the intake service's collaborators, built by Run from Config or by `grantline dev` in
// process.
type Deps struct {
	JS           jetstream.JetStream
	Store        *eventstore.Store
	Catalogue    *catalogue.Catalogue
	Integrations *intake.Integrations
	Auth         httpapi.Authenticator
	Idempotency  *idempotency.Keys
	Now          func() time.Time
	ReaderGroups []string
}

// API returns the HTTP API handler.
func (d Deps) API(log *slog.Logger) *httpapi.Handler {
	return &httpapi.Handler{Store: d.Store, Catalogue: d.Catalogue, Auth: d.Auth, Idempotency: d.Idempotency,
		Now: d.Now, Log: log, Readers: d.ReaderGroups}
}

// ConsumeIntegrations handles integration CloudEvents until ctx ends; without integrations configured it
// just waits.
func (d Deps) ConsumeIntegrations(ctx context.Context, log *slog.Logger) error {
	if d.Integrations == nil {
		<-ctx.Done()
		return nil
	}
	h := &integration.Handler{JS: d.JS, Store: d.Store, Catalogue: d.Catalogue, Integrations: d.Integrations,
		Idempotency: d.Idempotency, Now: d.Now, Log: log}
	return consumer.Run(ctx, d.JS, integration.Spec(), h.Handle, log)
}

// Run builds the service from cfg and serves until ctx ends, then shuts down in reverse order.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	cat, err := catalogue.Load(cfg.Catalogue)
	if err != nil {
		return err
	}
	var integrations *intake.Integrations
	if cfg.Integrations != "" {
		if integrations, err = intake.LoadIntegrations(cfg.Integrations); err != nil {
			return err
		}
	}
	authn, err := auth.NewVerifier(ctx, auth.Config{Issuer: cfg.OIDCIssuer, Audience: cfg.OIDCAudience,
		GroupsClaim: cfg.OIDCGroupsClaim, JWKSURL: cfg.OIDCJWKSURL})
	if err != nil {
		return fmt.Errorf("oidc: %w", err)
	}
	conn, err := eventstore.Dial(ctx, eventstore.DialConfig{Service: events.Intake, Getenv: os.Getenv,
		TrustFile: cfg.TrustFile, NATSURL: cfg.NATSURL, MonitorURLs: cfg.NATSMonitorURLs, NKeyFile: cfg.NATSNKeyFile})
	if err != nil {
		return err
	}
	defer conn.Close()
	nc, js, store := conn.NC, conn.JS, conn.Store
	keys, err := idempotency.Open(ctx, js, cfg.Replicas)
	if err != nil {
		return err
	}
	deps := Deps{JS: js, Store: store, Catalogue: cat, Integrations: integrations, Auth: authn,
		Idempotency: keys, Now: time.Now, ReaderGroups: cfg.ReaderGroups}

	return ops.RunService(ctx, ops.Service{
		Name: "intake", Addr: cfg.HTTPAddr,
		Checks:  map[string]ops.Check{"nats": ops.NATSCheck(nc)},
		Routes:  func(mux *http.ServeMux) { deps.API(log).Routes(mux) },
		Consume: func(ctx context.Context) error { return deps.ConsumeIntegrations(ctx, log) },
	}, log)
}
