package fulfilmentd

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
	"github.com/sony/gobreaker/v2"

	"github.com/grantline/grantline/pkg/auth"
	"github.com/grantline/grantline/pkg/catalogue"
	"github.com/grantline/grantline/pkg/consumer"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/eventstore"
	"github.com/grantline/grantline/pkg/ops"
	"github.com/grantline/grantline/pkg/telemetry"
	"github.com/grantline/grantline/services/fulfilment/connector"
	"github.com/grantline/grantline/services/fulfilment/connector/postgres"
	"github.com/grantline/grantline/services/fulfilment/connector/webhook"
	"github.com/grantline/grantline/services/fulfilment/credential"
	"github.com/grantline/grantline/services/fulfilment/httpapi"
	"github.com/grantline/grantline/services/fulfilment/reaction"
	"github.com/grantline/grantline/services/fulfilment/taskindex"
)

// Deps are the fulfilment service's collaborators, built by Run from Config or by `grantline dev` in
// process. Store must sign as events.Fulfilment.
type Deps struct {
	JS        jetstream.JetStream
	Store     *eventstore.Store
	Catalogue *catalogue.Catalogue
	Auth      httpapi.Authenticator
	// Connectors by catalogue name: "postgres" (postgres.Open with the target DSN and role mapping),
	// "webhook" (webhook.New). Manual entitlements need none.
	Connectors connector.Set
	// Credentials and Tasks are the service's key-value buckets (OpenState opens both).
	Credentials *credential.Store
	Tasks       *taskindex.Index
	// RevokeTasks completes revoke tasks in process (the revoker's, in `grantline dev`); nil answers 421
	// and the revoker's own endpoint does it.
	RevokeTasks httpapi.RevokeCompleter
	Now         func() time.Time
	// TaskDue is how long people have for a manual task; 0 means 4h.
	TaskDue time.Duration
	// MaxDeliveries bounds the grant attempts of one event; 0 means reaction.DefaultMaxDeliveries.
	MaxDeliveries int
}

// OpenState opens (creating if need be) the service's key-value buckets: the credential store,
// encrypting under key (32 bytes), and the task index.
func OpenState(ctx context.Context, js jetstream.JetStream, key []byte, replicas int) (*credential.Store, *taskindex.Index, error) {
	creds, err := credential.Open(ctx, js, key, replicas)
	if err != nil {
		return nil, nil, err
	}
	tasks, err := taskindex.Open(ctx, js, replicas)
	if err != nil {
		return nil, nil, err
	}
	return creds, tasks, nil
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
	h := &httpapi.Handler{Store: d.Store, Tasks: d.Tasks, Credentials: d.Credentials, RevokeTasks: d.RevokeTasks,
		Auth: d.Auth, Now: d.now(), Log: log}
	h.Routes(mux)
}

// Reactions returns the stream handlers over d.
func (d Deps) Reactions(log *slog.Logger) *reaction.Reactions {
	return &reaction.Reactions{JS: d.JS, Store: d.Store, Catalogue: d.Catalogue, Connectors: d.Connectors,
		Credentials: d.Credentials, Tasks: d.Tasks, Now: d.now(), Log: log, TaskDue: d.TaskDue, MaxDeliveries: d.MaxDeliveries}
}

// Consume runs the reactions until ctx ends: the grant reaction on approved and policy_decided
// (topology.FulfilmentGrants), the same at a request's start_at (topology.FulfilmentStart, on its
// timers), and the revoke-task reaction on expired, revocation_requested and post_reviewed. At
// start it also puts every open task back into the task index. It returns nil once ctx ends and every
// consumer has stopped, or the first error that stopped one (after stopping the others).
func (d Deps) Consume(ctx context.Context, log *slog.Logger) error {
	h := d.Reactions(log)
	runs := []struct {
		spec    consumer.Spec
		handler consumer.Handler
	}{
		{reaction.FulfilSpec(h.Deliveries()), h.Fulfil},
		{reaction.StartSpec(h.Deliveries()), h.Started},
		{reaction.RevokeTasksSpec(), h.OpenRevokeTasks},
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
		if err := h.ReindexTasks(runCtx); err != nil && runCtx.Err() == nil {
			log.Error("reindex tasks", telemetry.KeyError, err.Error())
		}
	})
	wg.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return errors.Join(errs...)
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
	conns, closeConns, err := OpenConnectors(ctx, cfg.PGTargetURL, cfg.PGRoles, cfg.Webhooks, os.Getenv, log)
	if err != nil {
		return err
	}
	defer closeConns()
	conn, err := eventstore.Dial(ctx, eventstore.DialConfig{Service: events.Fulfilment, Getenv: os.Getenv,
		TrustFile: cfg.TrustFile, NATSURL: cfg.NATSURL, MonitorURLs: cfg.NATSMonitorURLs, NKeyFile: cfg.NATSNKeyFile})
	if err != nil {
		return err
	}
	defer conn.Close()
	nc, js, store := conn.NC, conn.JS, conn.Store
	creds, tasks, err := OpenState(ctx, js, cfg.CredentialKey, cfg.Replicas)
	if err != nil {
		return err
	}
	deps := Deps{JS: js, Store: store, Catalogue: cat, Auth: authn, Connectors: conns, Credentials: creds, Tasks: tasks,
		Now: time.Now, TaskDue: cfg.TaskDue, MaxDeliveries: cfg.MaxDeliveries}

	return ops.RunService(ctx, ops.Service{
		Name: "fulfilment", Addr: cfg.HTTPAddr,
		Checks: map[string]ops.Check{"nats": ops.NATSCheck(nc)},
		Routes: func(mux *http.ServeMux) {
			deps.Routes(mux, log)
		},
		Consume: func(ctx context.Context) error { return deps.Consume(ctx, log) },
	}, log)
}

// OpenConnectors builds the connectors the configuration names: postgres when pgURL is set (with the
// role mapping), webhook when webhooks names a targets file (secrets read through getenv). The returned
// function closes them.
func OpenConnectors(ctx context.Context, pgURL string, roles map[string]string, webhooks string, getenv func(string) string, log *slog.Logger) (connector.Set, func(), error) {
	set := connector.Set{}
	closeAll := func() {}
	if pgURL != "" {
		pg, err := postgres.Open(ctx, pgURL, roles)
		if err != nil {
			return nil, nil, err
		}
		set[postgres.Name] = pg
		closeAll = pg.Close
	}
	if webhooks != "" {
		cfg, err := LoadWebhooks(webhooks, getenv)
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		cfg.OnStateChange = func(target string, from, to gobreaker.State) {
			log.Warn("webhook circuit breaker", "target", target, "from", from.String(), "to", to.String())
		}
		wh, err := webhook.New(cfg)
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		set[webhook.Name] = wh
	}
	return set, closeAll, nil
}
