package fulfilmentd

import (
	"context"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/metric"

	"github.com/grantline/grantline/pkg/catalogue"
	"github.com/grantline/grantline/pkg/connector"
	"github.com/grantline/grantline/pkg/connector/targets"
	"github.com/grantline/grantline/pkg/credential"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/eventstore"
	"github.com/grantline/grantline/pkg/ops"
	"github.com/grantline/grantline/pkg/telemetry"
	"github.com/grantline/grantline/services/fulfilment/httpapi"
	"github.com/grantline/grantline/services/fulfilment/reaction"
	"github.com/grantline/grantline/services/fulfilment/taskindex"
)

// Deps are the fulfilment service's collaborators, built by New from Config (tests build them
// directly). Store must sign as events.Fulfilment.
type Deps struct {
	JS        jetstream.JetStream
	Store     *eventstore.Store
	Catalogue *catalogue.Catalogue
	Auth      httpapi.Authenticator
	// Connectors by catalogue name: "postgres" (postgres.Open with the target DSN and role mapping),
	// "webhook" (webhook.New). Manual entitlements need none.
	Connectors connector.Set
	// Credentials and Tasks are the service's key-value buckets.
	Credentials *credential.Store
	Tasks       *taskindex.Index
	Now         func() time.Time
	// TaskDue is how long people have for a manual task; 0 means 4h.
	TaskDue time.Duration
	// RetryFor bounds how long a transient grant failure is retried before the request is recorded
	// failed; 0 means reaction.DefaultRetryFor.
	RetryFor time.Duration
	// Meter receives the service's metrics, its consumers' included; nil records none.
	Meter metric.MeterProvider
	// AckWait is its consumers\' ack wait (ops.Host.AckWait); zero is consumer.DefaultAckWait.
	AckWait time.Duration
}

func (d Deps) now() func() time.Time {
	if d.Now == nil {
		return time.Now
	}
	return d.Now
}

// Routes registers the HTTP API (GET /v1/tasks, POST /v1/tasks/{id}/complete,
// GET /v1/requests/{id}/credential) on mux.
func (d Deps) Routes(mux *http.ServeMux, log *slog.Logger) {
	h := &httpapi.Handler{Store: d.Store, Catalogue: d.Catalogue, Tasks: d.Tasks, Credentials: d.Credentials, Auth: d.Auth, Now: d.now(), Log: log}
	h.Routes(mux)
}

// Reactions returns the stream handlers over d.
func (d Deps) Reactions(log *slog.Logger) *reaction.Reactions {
	return &reaction.Reactions{JS: d.JS, Store: d.Store, Catalogue: d.Catalogue, Connectors: d.Connectors,
		Credentials: d.Credentials, Tasks: d.Tasks, Now: d.now(), Log: log, TaskDue: d.TaskDue, RetryFor: d.RetryFor,
		GrantLatency: telemetry.LatencyHistogram(d.Meter, "grantline/fulfilment", "grantline_grant_latency",
			"time from the event that allowed a grant to the grant recorded"),
		ConnectorErrors: targets.NewErrors(d.Meter)}
}

// Consume runs the reactions until ctx ends: the grant reaction on approved, policy_decided and
// start_checked (topology.FulfilmentGrants), and the revoke-task reaction on expired,
// revocation_requested and post_reviewed. At
// start it also puts every open task back into the task index. It returns nil once ctx ends and every
// consumer has stopped, or the first error that stopped one (after stopping the others).
func (d Deps) Consume(ctx context.Context, log *slog.Logger) error {
	h := d.Reactions(log)
	return ops.RunAll(ctx,
		ops.Consumer(d.JS, d.Meter, d.AckWait, reaction.FulfilSpec(), h.Fulfil, log),
		ops.Consumer(d.JS, d.Meter, d.AckWait, reaction.RevokeTasksSpec(), h.OpenRevokeTasks, log),
		func(ctx context.Context) error {
			// An index left incomplete only hides tasks from GET /v1/tasks: worth a log line, not a stop.
			if err := h.ReindexTasks(ctx); err != nil && ctx.Err() == nil {
				log.Error("reindex tasks", telemetry.KeyError, err.Error())
			}
			return nil
		})
}

// New builds the fulfilment service from cfg on host: the catalogue, the token verifier, the
// connectors to the targets, and the credential and task buckets. It serves the task and credential
// API and runs Consume; its Close closes the connectors.
func New(ctx context.Context, cfg Config, host ops.Host) (ops.Service, error) {
	cat, err := catalogue.Load(cfg.Catalogue)
	if err != nil {
		return ops.Service{}, err
	}
	authn, err := cfg.OIDC.Verifier(ctx)
	if err != nil {
		return ops.Service{}, err
	}
	key, err := credential.ParseKey(cfg.CredentialKey)
	if err != nil {
		return ops.Service{}, err
	}
	conns, closeConns, err := targets.Open(ctx, cfg.Targets, os.Getenv, host.Log, host.Meter)
	if err != nil {
		return ops.Service{}, err
	}
	creds, err := credential.Open(ctx, host.Conn.JS, key, cfg.Replicas)
	var tasks *taskindex.Index
	if err == nil {
		tasks, err = taskindex.Open(ctx, host.Conn.JS, cfg.Replicas)
	}
	if err != nil {
		closeConns()
		return ops.Service{}, err
	}
	d := Deps{JS: host.Conn.JS, Store: host.Conn.Store, Catalogue: cat, Auth: authn, Connectors: conns, Credentials: creds,
		Tasks: tasks, Now: time.Now, TaskDue: cfg.TaskDue, RetryFor: cfg.RetryFor, Meter: host.Meter, AckWait: host.AckWait}
	return ops.Service{Name: "fulfilment",
		Routes:  func(mux *http.ServeMux) { d.Routes(mux, host.Log) },
		Consume: func(ctx context.Context) error { return d.Consume(ctx, host.Log) },
		Close:   closeConns,
	}, nil
}

// Run runs the fulfilment service as a process of its own (grantline-fulfilment) until ctx ends.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	return ops.Run(ctx, cfg.Base, ops.SignsAs(events.Fulfilment, cfg.Signing), log,
		func(ctx context.Context, host ops.Host) (ops.Service, error) { return New(ctx, cfg, host) })
}
