package intaked

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/metric"

	"github.com/grantline/grantline/pkg/catalogue"
	"github.com/grantline/grantline/pkg/consumer"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/eventstore"
	"github.com/grantline/grantline/pkg/idempotency"
	"github.com/grantline/grantline/pkg/ops"
	"github.com/grantline/grantline/pkg/topology"
	"github.com/grantline/grantline/services/intake"
	"github.com/grantline/grantline/services/intake/httpapi"
	"github.com/grantline/grantline/services/intake/integration"
	"github.com/grantline/grantline/services/intake/throttle"
)

// Deps are the intake service's collaborators, built by New from Config.
type Deps struct {
	JS           jetstream.JetStream
	Store        *eventstore.Store
	Catalogue    *catalogue.Catalogue
	Integrations *intake.Integrations
	Auth         httpapi.Authenticator
	Idempotency  *idempotency.Keys
	Now          func() time.Time
	ReaderGroups []string
	// RequesterLimits and IntegrationLimits limit submissions; nil limits nothing.
	RequesterLimits, IntegrationLimits *throttle.Limiter
	// Meter receives the service's metrics, its consumers' included; nil records none.
	Meter metric.MeterProvider
	// AckWait is its consumers\' ack wait (ops.Host.AckWait); zero is consumer.DefaultAckWait.
	AckWait time.Duration
}

// API returns the HTTP API handler.
func (d Deps) API(log *slog.Logger) *httpapi.Handler {
	return &httpapi.Handler{Store: d.Store, Catalogue: d.Catalogue, Auth: d.Auth, Idempotency: d.Idempotency,
		Now: d.Now, Log: log, Readers: d.ReaderGroups, Submissions: d.RequesterLimits}
}

// ConsumeIntegrations handles integration CloudEvents until ctx ends.
func (d Deps) ConsumeIntegrations(ctx context.Context, log *slog.Logger) error {
	h := &integration.Handler{JS: d.JS, Store: d.Store, Catalogue: d.Catalogue, Integrations: d.Integrations,
		Idempotency: d.Idempotency, Submissions: d.IntegrationLimits, Now: d.Now, Log: log}
	spec := integration.Spec()
	spec.Meter, spec.AckWait = d.Meter, d.AckWait
	return consumer.Run(ctx, d.JS, spec, h.Handle, log)
}

// New builds the intake service from cfg on host: the catalogue, the integrations (if any), the
// token verifier and the idempotency bucket. It serves the HTTP API (POST /v1/requests,
// GET /v1/requests/{id}, POST /v1/requests/{id}/withdraw) and, with integrations configured,
// consumes their CloudEvents.
func New(ctx context.Context, cfg Config, host ops.Host) (ops.Service, error) {
	cat, err := catalogue.Load(cfg.Catalogue)
	if err != nil {
		return ops.Service{}, err
	}
	var integrations *intake.Integrations
	if cfg.Integrations != "" {
		if integrations, err = intake.LoadIntegrations(cfg.Integrations); err != nil {
			return ops.Service{}, err
		}
	}
	authn, err := cfg.OIDC.Verifier(ctx)
	if err != nil {
		return ops.Service{}, err
	}
	keys, err := idempotency.Open(ctx, host.Conn.JS, topology.IdempotencyBucket, "requests", cfg.Replicas)
	if err != nil {
		return ops.Service{}, err
	}
	d := Deps{JS: host.Conn.JS, Store: host.Conn.Store, Catalogue: cat, Integrations: integrations, Auth: authn,
		Idempotency: keys, Now: time.Now, ReaderGroups: cfg.ReaderGroups, Meter: host.Meter, AckWait: host.AckWait,
		RequesterLimits:   throttle.New(throttle.Limit{Burst: cfg.SubmitBurst, Every: cfg.SubmitEvery}, time.Now),
		IntegrationLimits: throttle.New(throttle.Limit{Burst: cfg.IntegrationSubmitBurst, Every: cfg.IntegrationSubmitEvery}, time.Now)}
	svc := ops.Service{Name: "intake", Routes: func(mux *http.ServeMux) { d.API(host.Log).Routes(mux) }}
	if integrations != nil {
		svc.Consume = func(ctx context.Context) error { return d.ConsumeIntegrations(ctx, host.Log) }
	}
	return svc, nil
}

// Run runs the intake service as a process of its own (grantline-intake) until ctx ends.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	return ops.Run(ctx, cfg.Base, ops.SignsAs(events.Intake, cfg.Signing), log,
		func(ctx context.Context, host ops.Host) (ops.Service, error) { return New(ctx, cfg, host) })
}
