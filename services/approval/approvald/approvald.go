package approvald

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/metric"

	"github.com/grantline/grantline/pkg/auth"
	"github.com/grantline/grantline/pkg/catalogue"
	"github.com/grantline/grantline/pkg/consumer"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/eventstore"
	"github.com/grantline/grantline/pkg/ops"
	"github.com/grantline/grantline/services/approval"
	"github.com/grantline/grantline/services/approval/httpapi"
	"github.com/grantline/grantline/services/approval/postgres"
	"github.com/grantline/grantline/services/approval/reaction"
)

// Deps are the approval service's collaborators, built by New from Config (tests build them
// directly). Store must sign as events.Approval.
type Deps struct {
	JS    jetstream.JetStream
	Store *eventstore.Store
	// Catalogue names the entitlements' owners, who see their requests; nil: only the people and
	// groups a request names see it here.
	Catalogue *catalogue.Catalogue
	Auth      httpapi.Authenticator
	// DB holds the review inbox; Migrate (or Consume, which calls it) prepares its tables.
	DB  *pgxpool.Pool
	Now func() time.Time
	// InboxStall reports the inbox projection waiting for its database or the broker (readiness);
	// nil tracks nothing.
	InboxStall *consumer.Stall
	// Meter receives the service's metrics, its consumers' included; nil records none.
	Meter metric.MeterProvider
	// AckWait is its consumers\' ack wait (ops.Host.AckWait); zero is consumer.DefaultAckWait.
	AckWait time.Duration
	// CampaignAdminGroups open access reviews; nil means security.
	CampaignAdminGroups []string
}

// Rules are the review rules with production identity normalisation.
func Rules() approval.Rules { return approval.Rules{Normalize: auth.NormalizeSubject} }

// Migrate creates or updates the review inbox's tables. Consume calls it; call it before serving
// Routes if the API may answer before Consume has started.
func (d Deps) Migrate(ctx context.Context) error { return postgres.Migrate(ctx, d.DB) }

// Routes registers the HTTP API (POST /v1/requests/{id}/reviews, POST /v1/requests/{id}/post-review,
// GET /v1/reviews, and the access reviews under /v1/campaigns) on mux.
func (d Deps) Routes(mux *http.ServeMux, log *slog.Logger) {
	admins := d.CampaignAdminGroups
	if admins == nil {
		admins = []string{"security"}
	}
	h := &httpapi.Handler{Store: d.Store, Catalogue: d.Catalogue, Auth: d.Auth, Inbox: postgres.NewInbox(d.DB), Rules: Rules(), Log: log,
		JS: d.JS, CampaignAdminGroups: admins, Now: d.Now}
	h.Routes(mux)
}

// Consume migrates the inbox database, rebuilds the inbox if the database is behind its consumer (a
// new or restored database), and runs the reactions until ctx ends: the timers armed by policy_decided
// and granted, the fired timers, and the inbox projection. It returns nil once ctx ends and every
// consumer has stopped, or the first error that stopped one of them (after stopping the others).
func (d Deps) Consume(ctx context.Context, log *slog.Logger) error {
	inbox := postgres.NewInbox(d.DB)
	err := d.Migrate(ctx)
	var checkpoint uint64
	if err == nil {
		checkpoint, err = inbox.Checkpoint(ctx)
	}
	if err == nil {
		err = reaction.ResetInboxIfBehind(ctx, d.JS, checkpoint, log)
	}
	if err != nil {
		if ctx.Err() != nil {
			// Stopped from outside while still setting up: not a failure.
			return nil
		}
		return err
	}
	now := d.Now
	if now == nil {
		now = time.Now
	}
	h := &reaction.Reactions{JS: d.JS, Store: d.Store, Now: now, Log: log}
	return ops.RunAll(ctx,
		ops.Consumer(d.JS, d.Meter, d.AckWait, reaction.SchedulesSpec(), h.Schedule, log),
		ops.Consumer(d.JS, d.Meter, d.AckWait, reaction.TimersSpec(), h.Fired, log),
		func(ctx context.Context) error {
			spec := reaction.InboxSpec(d.InboxStall)
			spec.Meter, spec.AckWait = d.Meter, d.AckWait
			return consumer.RunBatch(ctx, d.JS, spec, h.Project(inbox), log)
		})
}

// New builds the approval service from cfg on host: the catalogue, the token verifier and the inbox
// database (migrated before the API answers). It serves the review API and runs Consume.
func New(ctx context.Context, cfg Config, host ops.Host) (ops.Service, error) {
	cat, err := catalogue.Load(cfg.Catalogue)
	if err != nil {
		return ops.Service{}, err
	}
	authn, err := cfg.OIDC.Verifier(ctx)
	if err != nil {
		return ops.Service{}, err
	}
	pool, err := pgxpool.New(ctx, cfg.DatabaseURL)
	if err != nil {
		return ops.Service{}, fmt.Errorf("database: %w", err)
	}
	d := Deps{JS: host.Conn.JS, Store: host.Conn.Store, Catalogue: cat, Auth: authn, DB: pool, Now: time.Now, InboxStall: &consumer.Stall{},
		Meter: host.Meter, AckWait: host.AckWait, CampaignAdminGroups: cfg.CampaignAdminGroups}
	if err := d.Migrate(ctx); err != nil {
		pool.Close()
		return ops.Service{}, err
	}
	return ops.Service{Name: "approval",
		Routes: func(mux *http.ServeMux) { d.Routes(mux, host.Log) },
		Checks: map[string]ops.Check{"database": func(ctx context.Context) error { return pool.Ping(ctx) },
			"inbox": d.InboxStall.Check},
		Consume: func(ctx context.Context) error { return d.Consume(ctx, host.Log) },
		Close:   pool.Close,
	}, nil
}

// Run runs the approval service as a process of its own (grantline-approval) until ctx ends.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	return ops.Run(ctx, cfg.Base, ops.SignsAs(events.Approval, cfg.Signing), log,
		func(ctx context.Context, host ops.Host) (ops.Service, error) { return New(ctx, cfg, host) })
}
