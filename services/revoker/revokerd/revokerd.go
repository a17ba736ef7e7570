package revokerd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/metric"

	"github.com/grantline/grantline/pkg/catalogue"
	"github.com/grantline/grantline/pkg/connector"
	"github.com/grantline/grantline/pkg/connector/targets"
	"github.com/grantline/grantline/pkg/consumer"
	"github.com/grantline/grantline/pkg/credential"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/eventstore"
	"github.com/grantline/grantline/pkg/idempotency"
	"github.com/grantline/grantline/pkg/ops"
	"github.com/grantline/grantline/pkg/telemetry"
	"github.com/grantline/grantline/pkg/topology"
	"github.com/grantline/grantline/services/revoker"
	"github.com/grantline/grantline/services/revoker/httpapi"
	"github.com/grantline/grantline/services/revoker/reaction"
	"github.com/grantline/grantline/services/revoker/reconcile"
)

// Deps are the revoker's collaborators, built by New from Config (tests build them directly). Store
// must sign as events.Revoker.
type Deps struct {
	JS jetstream.JetStream
	// Expiries is the index of armed expiries by second (reaction.ExpiriesConfig).
	Expiries  jetstream.KeyValue
	Store     *eventstore.Store
	Catalogue *catalogue.Catalogue
	Auth      httpapi.Authenticator
	// Connectors are the same as fulfilment's: a grant is revoked through the connector that made it.
	Connectors connector.Set
	// Credentials, optional, lets the revoker delete a revoked grant's unretrieved secret at once.
	Credentials *credential.Store
	// AdminGroups may revoke any grant early; nil means security.
	AdminGroups []string
	// LockAdminGroups place, list and remove locks; nil means security.
	LockAdminGroups []string
	// LockKeys remembers the Idempotency-Keys of lock creates (idempotency.Open on
	// topology.LockIdempotencyBucket).
	LockKeys *idempotency.Keys
	Now      func() time.Time
	// Failures says when failing revocations are recorded (zero fields: 5 attempts, then every 5m).
	Failures revoker.FailurePolicy
	// BackoffCap caps the wait between attempts (0: 1m).
	BackoffCap time.Duration
	// AttemptTimeout bounds one attempt at the target (0: 10s).
	AttemptTimeout time.Duration
	// ReconcileEvery is the time between two comparisons of the targets with the evidence; 0 runs
	// none.
	ReconcileEvery time.Duration
	// Meter receives the service's metrics, its consumers' included; nil records none.
	Meter metric.MeterProvider
	// AckWait is its consumers\' ack wait (ops.Host.AckWait); zero is consumer.DefaultAckWait.
	AckWait time.Duration
}

// Routes registers the HTTP API (POST /v1/requests/{id}/revoke, POST /v1/revoke-tasks/{id}/complete)
// on mux.
func (d Deps) Routes(mux *http.ServeMux, log *slog.Logger) {
	admins := d.AdminGroups
	if admins == nil {
		admins = []string{"security"}
	}
	lockAdmins := d.LockAdminGroups
	if lockAdmins == nil {
		lockAdmins = []string{"security"}
	}
	h := &httpapi.Handler{Store: d.Store, Catalogue: d.Catalogue, Auth: d.Auth, AdminGroups: admins,
		LockAdminGroups: lockAdmins, LockKeys: d.LockKeys, JS: d.JS, Now: d.Now, Log: log}
	h.Routes(mux)
}

// Reactions returns the stream handlers over d.
func (d Deps) Reactions(log *slog.Logger) *reaction.Reactions {
	return &reaction.Reactions{JS: d.JS, Expiries: d.Expiries, Store: d.Store, Catalogue: d.Catalogue, Connectors: d.Connectors,
		Credentials: d.Credentials, Now: d.Now, Log: log, Failures: d.Failures, BackoffCap: d.BackoffCap,
		AttemptTimeout: d.AttemptTimeout,
		RevocationLag: telemetry.LatencyHistogram(d.Meter, "grantline/revoker", "grantline_revocation_lag",
			"time from a revocation falling due to its revocation recorded"),
		ConnectorErrors: targets.NewErrors(d.Meter)}
}

// Reconciler returns the reconciler over d.
func (d Deps) Reconciler(log *slog.Logger) *reconcile.Reconciler {
	return &reconcile.Reconciler{JS: d.JS, Store: d.Store, Catalogue: d.Catalogue, Connectors: d.Connectors,
		Every: d.ReconcileEvery, Now: d.Now, Log: log}
}

// Consume runs the reactions until ctx ends: arming expiries on granted (durable revoker-schedules),
// revoking the grants of a second in batches when its timer fires (revoker-expiry), revoking one at a
// time on revocation_requested, expired and post_reviewed (revoker), and, with ReconcileEvery set, reconciling the targets with the evidence on
// the reconcile timer (revoker-reconcile). At start it sweeps for expiries that were lost
// (reaction.Sweep) and arms the reconcile timer if none is set. It returns nil once ctx ends and every consumer has
// stopped, or the first error that stopped one (after stopping the others).
func (d Deps) Consume(ctx context.Context, log *slog.Logger) error {
	h := d.Reactions(log)
	run := []func(context.Context) error{
		func(ctx context.Context) error {
			spec := reaction.SchedulesSpec()
			spec.Meter, spec.AckWait = d.Meter, d.AckWait
			return consumer.RunBatch(ctx, d.JS, spec, h.Schedule, log)
		},
		ops.Consumer(d.JS, d.Meter, d.AckWait, reaction.ExpirySpec(d.backoffCap()), h.Fired, log),
		ops.Consumer(d.JS, d.Meter, d.AckWait, reaction.RevocationsSpec(d.backoffCap()), h.Revocations, log),
		func(ctx context.Context) error {
			// A failed sweep leaves a grant to the next start's; the consumers must not stop for it.
			armed, err := h.Sweep(ctx)
			switch {
			case err != nil && ctx.Err() == nil:
				log.Error("sweep", telemetry.KeyError, err.Error())
			case err == nil:
				log.Info("sweep done", "armed", armed)
			}
			return nil
		},
	}
	if d.ReconcileEvery > 0 {
		rec := d.Reconciler(log)
		if err := rec.Arm(ctx); err != nil {
			return err
		}
		run = append(run, ops.Consumer(d.JS, d.Meter, d.AckWait, reconcile.Spec(d.backoffCap()), rec.Fired, log))
	}
	return ops.RunAll(ctx, run...)
}

func (d Deps) backoffCap() time.Duration {
	if d.BackoffCap > 0 {
		return d.BackoffCap
	}
	return reaction.DefaultBackoffCap
}

// New builds the revoker from cfg on host: the catalogue, the token verifier, the connectors to the
// targets and, with a credential key, the credential bucket (to discard revoked secrets). It serves
// early revocation and revoke-task completion and runs Consume; its Close closes the connectors.
func New(ctx context.Context, cfg Config, host ops.Host) (ops.Service, error) {
	cat, err := catalogue.Load(cfg.Catalogue)
	if err != nil {
		return ops.Service{}, err
	}
	authn, err := cfg.OIDC.Verifier(ctx)
	if err != nil {
		return ops.Service{}, err
	}
	var creds *credential.Store
	if cfg.CredentialKey != "" {
		key, err := credential.ParseKey(cfg.CredentialKey)
		if err != nil {
			return ops.Service{}, err
		}
		creds, err = credential.Attach(ctx, host.Conn.JS, key)
		if errors.Is(err, jetstream.ErrBucketNotFound) {
			host.Log.Warn("no credential bucket yet (fulfilment creates it); revoked secrets are left to expire")
		} else if err != nil {
			return ops.Service{}, err
		}
	}
	lockKeys, err := idempotency.Open(ctx, host.Conn.JS, topology.LockIdempotencyBucket, "locks", cfg.Replicas)
	if err != nil {
		return ops.Service{}, err
	}
	expiries, err := host.Conn.JS.CreateOrUpdateKeyValue(ctx, reaction.ExpiriesConfig(cfg.Replicas))
	if err != nil {
		return ops.Service{}, fmt.Errorf("expiry index: %w", err)
	}
	conns, closeConns, err := targets.Open(ctx, cfg.Targets, os.Getenv, host.Log, host.Meter)
	if err != nil {
		return ops.Service{}, err
	}
	d := Deps{JS: host.Conn.JS, Expiries: expiries, Store: host.Conn.Store, Catalogue: cat, Auth: authn, Connectors: conns, Credentials: creds,
		AdminGroups: cfg.AdminGroups, LockAdminGroups: cfg.LockAdminGroups, LockKeys: lockKeys, Now: time.Now, BackoffCap: cfg.BackoffCap, AttemptTimeout: cfg.AttemptTimeout,
		ReconcileEvery: cfg.ReconcileEvery, Failures: revoker.FailurePolicy{Budget: cfg.RetryBudget, Every: cfg.ReportEvery, SLO: cfg.SLO},
		Meter: host.Meter, AckWait: host.AckWait}
	return ops.Service{Name: "revoker",
		Routes:  func(mux *http.ServeMux) { d.Routes(mux, host.Log) },
		Consume: func(ctx context.Context) error { return d.Consume(ctx, host.Log) },
		Close:   closeConns,
	}, nil
}

// Run runs the revoker as a process of its own (grantline-revoker) until ctx ends.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	return ops.Run(ctx, cfg.Base, ops.SignsAs(events.Revoker, cfg.Signing), log,
		func(ctx context.Context, host ops.Host) (ops.Service, error) { return New(ctx, cfg, host) })
}
