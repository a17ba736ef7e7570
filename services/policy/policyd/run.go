package policyd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/brokeraccess"
	"github.com/grantline/grantline/pkg/catalogue"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/eventstore"
	"github.com/grantline/grantline/pkg/ops"
	"github.com/grantline/grantline/services/policy"
)

// Run is the policy service as a process: it loads the catalogue, the policy bundle and the trust file,
// connects to NATS, opens the event store (which refuses servers that do not fsync every write, asked
// through cfg.NATSMonitorURLs), serves /livez, /readyz and /metrics on cfg.HTTPAddr, and runs Serve until
// ctx ends. It then stops in reverse order (consumers, ops server, metrics, connection), each bounded by
// cfg.ShutdownTimeout. It returns the error that kept it from starting or stopped it, nil after ctx
// ended normally.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	log.Info("starting the policy service", "config", cfg)
	if cfg.Signer == nil {
		return errors.New("policy service: no signing key")
	}
	cat, err := catalogue.Load(cfg.CataloguePath)
	if err != nil {
		return err
	}
	engine, err := policy.Load(ctx, cfg.PolicyDir, policy.WithTimeout(cfg.EvalTimeout))
	if err != nil {
		return err
	}
	verifier, err := events.LoadTrustFile(cfg.TrustFile)
	if err != nil {
		return err
	}

	auth, err := brokeraccess.ClientOptions(brokeraccess.Policy, cfg.NATSNKeyFile)
	if err != nil {
		return err
	}
	closed := make(chan struct{})
	nc, err := nats.Connect(cfg.NATSURL, append(auth, nats.Name("grantline-policy"), nats.MaxReconnects(-1),
		nats.DrainTimeout(cfg.ShutdownTimeout), nats.ClosedHandler(func(*nats.Conn) { close(closed) }))...)
	if err != nil {
		return fmt.Errorf("connect to nats: %w", err)
	}
	defer func() {
		if err := nc.Drain(); err != nil {
			nc.Close()
		}
		select {
		case <-closed:
		case <-time.After(cfg.ShutdownTimeout):
			nc.Close()
		}
	}()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	store, err := eventstore.Open(ctx, js, eventstore.Config{
		Signer: cfg.Signer, Verifier: verifier, RequestTimeout: cfg.NATSTimeout,
		Durability: eventstore.MonitorProbe(&http.Client{Timeout: 5 * time.Second}, cfg.NATSMonitorURLs...),
	})
	if err != nil {
		return err
	}

	health, err := ops.New(ops.Options{Service: "policy", Logger: log})
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
		defer cancel()
		_ = health.Shutdown(sctx)
	}()
	health.SetCheck("nats", func(context.Context) error {
		if !nc.IsConnected() {
			return errors.New("not connected to nats")
		}
		return nil
	})
	health.SetCheck("streams", func(ctx context.Context) error { return eventstore.Check(ctx, js) })
	srv, err := ops.Listen(cfg.HTTPAddr, health, log)
	if err != nil {
		return err
	}
	srv.ShutdownTimeout = cfg.ShutdownTimeout

	// The ops server outlives the consumers so /livez answers while they drain; if it fails, the
	// service stops rather than run unobservable.
	serveCtx, stopServing := context.WithCancel(ctx)
	defer stopServing()
	opsCtx, stopOps := context.WithCancel(context.WithoutCancel(ctx))
	opsDone := make(chan error, 1)
	go func() {
		err := srv.Serve(opsCtx)
		stopServing()
		opsDone <- err
	}()
	serveErr := Serve(serveCtx, Deps{
		JS: js, Store: store, Catalogue: cat, Engine: engine, MaxDeliveries: cfg.MaxDeliveries,
		StateReplicas: cfg.StateReplicas, Meter: health.MeterProvider(),
	}, log)
	stopOps()
	opsErr := <-opsDone
	log.Info("policy service stopped")
	return errors.Join(serveErr, opsErr)
}
