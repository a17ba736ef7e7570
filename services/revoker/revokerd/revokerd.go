package revokerd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/auth"
	"github.com/grantline/grantline/pkg/catalogue"
	"github.com/grantline/grantline/pkg/consumer"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/eventstore"
	"github.com/grantline/grantline/pkg/ops"
	"github.com/grantline/grantline/pkg/telemetry"
	"github.com/grantline/grantline/services/fulfilment/connector"
	"github.com/grantline/grantline/services/fulfilment/credential"
	"github.com/grantline/grantline/services/fulfilment/fulfilmentd"
	"github.com/grantline/grantline/services/revoker"
	"github.com/grantline/grantline/services/revoker/httpapi"
	"github.com/grantline/grantline/services/revoker/reaction"
)

// Deps are the revoker's collaborators, built by Run from Config or by `grantline dev` in process.
// Store must sign as events.Revoker.
type Deps struct {
	JS        jetstream.JetStream
	Store     *eventstore.Store
	Catalogue *catalogue.Catalogue
	Auth      httpapi.Authenticator
	// Connectors are the same as fulfilment's: a grant is revoked through the connector that made it.
	Connectors connector.Set
	// Credentials, optional, lets the revoker delete a revoked grant's unretrieved secret at once.
	Credentials *credential.Store
	// AdminGroups may revoke any grant early; nil means security.
	AdminGroups []string
	Now         func() time.Time
	// Failures says when failing revocations are recorded (zero fields: 5 attempts, then every 5m).
	Failures revoker.FailurePolicy
	// BackoffCap caps the wait between attempts (0: 1m).
	BackoffCap time.Duration
}

func (d Deps) handler(log *slog.Logger) *httpapi.Handler {
	admins := d.AdminGroups
	if admins == nil {
		admins = []string{"security"}
	}
	return &httpapi.Handler{Store: d.Store, Catalogue: d.Catalogue, Auth: d.Auth, AdminGroups: admins, Log: log}
}

// Routes registers POST /v1/requests/{id}/revoke on mux.
func (d Deps) Routes(mux *http.ServeMux, log *slog.Logger) { d.handler(log).Routes(mux) }

// TaskRoutes registers POST /v1/tasks/{id}/complete for revoke tasks, for a revoker serving on its own
// port; where fulfilment shares the process and mux, give it TaskCompleter instead.
func (d Deps) TaskRoutes(mux *http.ServeMux, log *slog.Logger) { d.handler(log).TaskRoutes(mux) }

// TaskCompleter records completed revoke tasks; plug it into fulfilmentd.Deps.RevokeTasks when both
// services share one process (`grantline dev`).
func (d Deps) TaskCompleter(log *slog.Logger) *httpapi.Handler { return d.handler(log) }

// Reactions returns the stream handlers over d.
func (d Deps) Reactions(log *slog.Logger) *reaction.Reactions {
	return &reaction.Reactions{JS: d.JS, Store: d.Store, Catalogue: d.Catalogue, Connectors: d.Connectors,
		Credentials: d.Credentials, Now: d.Now, Log: log, Failures: d.Failures, BackoffCap: d.BackoffCap}
}

// Consume runs the reactions until ctx ends: arming expiries on granted (durable revoker-schedules),
// expiring and revoking on fired timers (revoker-expiry), revoking on revocation_requested and
// post_reviewed (revoker). At start it sweeps for live grants without a schedule. It returns nil once
// ctx ends and every consumer has stopped, or the first error that stopped one (after stopping the
// others).
func (d Deps) Consume(ctx context.Context, log *slog.Logger) error {
	h := d.Reactions(log)
	runs := []struct {
		spec    consumer.Spec
		handler consumer.Handler
	}{
		{reaction.SchedulesSpec(), h.Schedule},
		{reaction.ExpirySpec(d.backoffCap()), h.Fired},
		{reaction.RevocationsSpec(d.backoffCap()), h.Revocations},
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	errs := make([]error, len(runs))
	for i, r := range runs {
		wg.Go(func() {
			if errs[i] = consumer.Run(runCtx, d.JS, r.spec, r.handler, log); errs[i] != nil {
				stop()
			}
		})
	}
	wg.Go(func() {
		armed, err := h.Sweep(runCtx)
		switch {
		case err != nil && runCtx.Err() == nil:
			log.Error("sweep", telemetry.KeyError, err.Error())
		case err == nil:
			log.Info("sweep done", "armed", armed)
		}
	})
	wg.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return errors.Join(errs...)
}

func (d Deps) backoffCap() time.Duration {
	if d.BackoffCap > 0 {
		return d.BackoffCap
	}
	return reaction.DefaultBackoffCap
}

// Run builds the service from cfg and serves until ctx ends, then shuts down in reverse order.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	log.Info("starting", "config", cfg)
	cat, err := catalogue.Load(cfg.Catalogue)
	if err != nil {
		return err
	}
	authn, err := auth.NewVerifier(ctx, auth.Config{Issuer: cfg.OIDCIssuer, Audience: cfg.OIDCAudience,
		GroupsClaim: cfg.OIDCGroupsClaim, JWKSURL: cfg.OIDCJWKSURL})
	if err != nil {
		return fmt.Errorf("oidc: %w", err)
	}
	conns, closeConns, err := fulfilmentd.OpenConnectors(ctx, cfg.PGTargetURL, cfg.PGRoles, cfg.Webhooks, os.Getenv, log)
	if err != nil {
		return err
	}
	defer closeConns()
	conn, err := eventstore.Dial(ctx, eventstore.DialConfig{Service: events.Revoker, Getenv: os.Getenv,
		TrustFile: cfg.TrustFile, NATSURL: cfg.NATSURL, MonitorURLs: cfg.NATSMonitorURLs, NKeyFile: cfg.NATSNKeyFile})
	if err != nil {
		return err
	}
	defer conn.Close()
	nc, js, store := conn.NC, conn.JS, conn.Store
	var creds *credential.Store
	if cfg.CredentialKey != nil {
		creds, err = credential.Attach(ctx, js, cfg.CredentialKey)
		if errors.Is(err, jetstream.ErrBucketNotFound) {
			log.Warn("no credential bucket yet (fulfilment creates it); revoked secrets are left to expire")
		} else if err != nil {
			return err
		}
	}
	deps := Deps{JS: js, Store: store, Catalogue: cat, Auth: authn, Connectors: conns, Credentials: creds,
		AdminGroups: cfg.AdminGroups, Now: time.Now, BackoffCap: cfg.BackoffCap,
		Failures: revoker.FailurePolicy{Budget: cfg.RetryBudget, Every: cfg.ReportEvery}}

	return ops.RunService(ctx, ops.Service{
		Name: "revoker", Addr: cfg.HTTPAddr,
		Checks: map[string]ops.Check{"nats": ops.NATSCheck(nc)},
		Routes: func(mux *http.ServeMux) {
			deps.Routes(mux, log)
			deps.TaskRoutes(mux, log)
		},
		Consume: func(ctx context.Context) error { return deps.Consume(ctx, log) },
	}, log)
}
