package approvald

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/auth"
	"github.com/grantline/grantline/pkg/consumer"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/eventstore"
	"github.com/grantline/grantline/pkg/ops"
	"github.com/grantline/grantline/services/approval"
	"github.com/grantline/grantline/services/approval/httpapi"
	"github.com/grantline/grantline/services/approval/postgres"
	"github.com/grantline/grantline/services/approval/reaction"
)

// Deps are the approval service's collaborators, built by Run from Config or by `grantline dev` in
// process. Store must sign as events.Approval.
type Deps struct {
	JS    jetstream.JetStream
	Store *eventstore.Store
	Auth  httpapi.Authenticator
	// DB holds the review inbox; Migrate (or Consume, which calls it) prepares its tables.
	DB  *pgxpool.Pool
	Now func() time.Time
}

// Rules are the review rules with production identity normalisation.
func Rules() approval.Rules { return approval.Rules{Normalize: auth.NormalizeSubject} }

// Migrate creates or updates the review inbox's tables. Consume calls it; call it before serving
// Routes if the API may answer before Consume has started.
func (d Deps) Migrate(ctx context.Context) error { return postgres.Migrate(ctx, d.DB) }

// Routes registers the HTTP API (POST /v1/requests/{id}/reviews, POST /v1/requests/{id}/post-review,
// GET /v1/reviews) on mux.
func (d Deps) Routes(mux *http.ServeMux, log *slog.Logger) {
	h := &httpapi.Handler{Store: d.Store, Auth: d.Auth, Inbox: postgres.NewInbox(d.DB), Rules: Rules(), Log: log}
	h.Routes(mux)
}

// Consume migrates the inbox database, rebuilds the inbox if the database is behind its consumer (a
// new or restored database), and runs the reactions until ctx ends: the timers armed by policy_decided
// and granted, the fired timers, and the inbox projection. It returns nil once ctx ends and every
// consumer has stopped, or the first error that stopped one of them (after stopping the others).
func (d Deps) Consume(ctx context.Context, log *slog.Logger) (err error) {
	defer func() {
		if ctx.Err() != nil {
			// Stopped from outside, possibly while still setting up: not a failure.
			err = nil
		}
	}()
	if err := d.Migrate(ctx); err != nil {
		return err
	}
	inbox := postgres.NewInbox(d.DB)
	checkpoint, err := inbox.Checkpoint(ctx)
	if err != nil {
		return err
	}
	if err := reaction.ResetInboxIfBehind(ctx, d.JS, checkpoint, log); err != nil {
		return err
	}
	now := d.Now
	if now == nil {
		now = time.Now
	}
	h := &reaction.Reactions{JS: d.JS, Store: d.Store, Now: now, Log: log}
	runs := []struct {
		spec    consumer.Spec
		handler consumer.Handler
	}{
		{reaction.SchedulesSpec(), h.Schedule},
		{reaction.TimersSpec(), h.Fired},
		{reaction.InboxSpec(), h.Project(inbox)},
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
	wg.Wait()
	return errors.Join(errs...)
}

// Run builds the service from cfg and serves until ctx ends, then shuts down in reverse order.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	log.Info("starting", "config", cfg)
	authn, err := auth.NewVerifier(ctx, auth.Config{Issuer: cfg.OIDCIssuer, Audience: cfg.OIDCAudience,
		GroupsClaim: cfg.OIDCGroupsClaim, JWKSURL: cfg.OIDCJWKSURL})
	if err != nil {
		return fmt.Errorf("oidc: %w", err)
	}
	pool, err := pgxpool.New(ctx, cfg.DatabaseURL)
	if err != nil {
		return fmt.Errorf("database: %w", err)
	}
	defer pool.Close()
	conn, err := eventstore.Dial(ctx, eventstore.DialConfig{Service: events.Approval, Getenv: os.Getenv,
		TrustFile: cfg.TrustFile, NATSURL: cfg.NATSURL, MonitorURLs: cfg.NATSMonitorURLs, NKeyFile: cfg.NATSNKeyFile})
	if err != nil {
		return err
	}
	defer conn.Close()
	nc, js, store := conn.NC, conn.JS, conn.Store
	deps := Deps{JS: js, Store: store, Auth: authn, DB: pool, Now: time.Now}
	if err := deps.Migrate(ctx); err != nil {
		return err
	}

	return ops.RunService(ctx, ops.Service{
		Name: "approval", Addr: cfg.HTTPAddr,
		Checks: map[string]ops.Check{"nats": ops.NATSCheck(nc), "database": func(ctx context.Context) error { return pool.Ping(ctx) }},
		Routes: func(mux *http.ServeMux) {
			deps.Routes(mux, log)
		},
		Consume: func(ctx context.Context) error { return deps.Consume(ctx, log) },
	}, log)
}
