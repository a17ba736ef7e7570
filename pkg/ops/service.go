package ops

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/metric"

	"github.com/grantline/grantline/pkg/consumer"
	"github.com/grantline/grantline/pkg/eventstore"
	"github.com/grantline/grantline/pkg/topology"
)

// Service is one daemon as the skeleton runs it. Each service package's New builds it from the
// service's configuration and a Host; Run (a process of its own) and `grantline dev` (every service
// in one process) run what New built the same way, through Process.Serve.
type Service struct {
	// Name names the service in logs and in its readiness checks' names.
	Name string
	// Routes registers the service's API on the process's mux; nil for a service without one.
	Routes func(mux *http.ServeMux)
	// Checks are the service's readiness checks, by name.
	Checks map[string]Check
	// Consume runs the service's consumers (see RunAll) until its context ends; nil for a service
	// without any. Its error stops the process: a service that cannot consume is not running.
	Consume func(ctx context.Context) error
	// Close releases what New opened (database pools, connectors) once Consume has returned and the
	// HTTP server has stopped; nil when there is nothing to release.
	Close func()
}

// Host is what the process running a service gives the service's New: the service's own connection
// to the broker (as its own NATS user, with its event store unless it signs nothing), the process's
// metrics, and a logger.
type Host struct {
	Conn  *eventstore.Connection
	Meter metric.MeterProvider
	Log   *slog.Logger
	// AckWait is the service's consumers' ack wait (config.Base.AckWait); zero is
	// consumer.DefaultAckWait. Pass it to Consumer.
	AckWait time.Duration
}

// Process is where services run: one HTTP server for their APIs and the operational endpoints.
type Process struct {
	// Server serves Mux (see Listen).
	Server *Server
	Mux    *http.ServeMux
	// Health answers /livez, /readyz and /metrics.
	Health *Handler
	// StopTimeout bounds the whole stop: the consumers' drain, then the HTTP server's graceful shutdown.
	StopTimeout time.Duration
	Log         *slog.Logger
}

// errStopping is the readiness answer while the process stops, so load balancers stop sending work.
var errStopping = errors.New("stopping")

// Serve registers the services' routes and readiness checks beside /livez, /readyz and /metrics,
// serves HTTP and runs every service's consumers until ctx ends or any of them fails. It then stops
// in order, within StopTimeout: /readyz answers 503 at once; the consumers stop fetching and drain
// their in-flight work while the API still answers; the HTTP server finishes its requests and
// closes; each service's Close runs, the last built first. It returns once all of that is done: nil
// after a stop, otherwise what failed (a consumer, the server, or a drain that ran out of time).
// Every service's Close runs, whatever happened.
func (p Process) Serve(ctx context.Context, services ...Service) error {
	defer func() {
		for _, s := range slices.Backward(services) {
			if s.Close != nil {
				s.Close()
			}
		}
	}()
	for _, path := range []string{"/livez", "/readyz", "/metrics"} {
		p.Mux.Handle("GET "+path, p.Health)
	}
	// The process runs until it is stopped, even when no service consumes or every consumer is done.
	consumers := []func(context.Context) error{func(ctx context.Context) error { <-ctx.Done(); return nil }}
	for _, s := range services {
		if s.Routes != nil {
			s.Routes(p.Mux)
		}
		for name, check := range s.Checks {
			p.Health.SetCheck(s.Name+"/"+name, check)
		}
		if s.Consume != nil {
			consumers = append(consumers, s.Consume)
		}
	}

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	consumed := make(chan error, 1)
	go func() {
		err := RunAll(runCtx, consumers...)
		stop()
		consumed <- err
	}()
	// The server outlives the consumers: it keeps answering while they drain.
	serveCtx, stopServing := context.WithCancel(context.WithoutCancel(ctx))
	defer stopServing()
	served := make(chan error, 1)
	go func() {
		err := p.Server.Serve(serveCtx)
		stop()
		served <- err
	}()

	<-runCtx.Done()
	p.Health.SetCheck("stopping", func(context.Context) error { return errStopping })
	deadline := time.Now().Add(p.StopTimeout)
	p.Log.Info("stopping", "within", p.StopTimeout.String())
	var consumeErr error
	select {
	case consumeErr = <-consumed:
	case <-time.After(time.Until(deadline)):
		consumeErr = fmt.Errorf("the consumers did not drain within %s", p.StopTimeout)
	}
	p.Server.ShutdownTimeout = max(time.Until(deadline), 0)
	stopServing()
	serveErr := <-served
	return errors.Join(consumeErr, serveErr)
}

// RunAll runs every fn at once until ctx ends. The first to fail stops the others: half a service's
// consumers running is not the service running. One that returns nil early (a sweep at start) does
// not stop the others. RunAll returns once every fn has returned: nil when ctx ended first (a stop is
// not a failure, even for a consumer caught while still being set up), otherwise the failures joined.
func RunAll(ctx context.Context, fns ...func(context.Context) error) error {
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	errs := make([]error, len(fns))
	var wg sync.WaitGroup
	for i, fn := range fns {
		wg.Go(func() {
			if errs[i] = fn(runCtx); errs[i] != nil {
				stop()
			}
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return errors.Join(errs...)
}

// Consumer is consumer.Run of spec and h as one of RunAll's functions, its metrics recorded in meter
// (nil: none), with the service's ackWait (Host.AckWait) unless spec sets its own.
func Consumer(js jetstream.JetStream, meter metric.MeterProvider, ackWait time.Duration, spec consumer.Spec, h consumer.Handler, log *slog.Logger) func(context.Context) error {
	spec.Meter = meter
	if spec.AckWait == 0 {
		spec.AckWait = ackWait
	}
	return func(ctx context.Context) error { return consumer.Run(ctx, js, spec, h, log) }
}

// BrokerCheck is ready while nc is connected and the evidence stream answers with a leader: what a
// service needs to write. A connection alone says nothing during a quorum loss, when the node it is
// connected to is up but no stream has a leader and every write fails.
func BrokerCheck(nc *nats.Conn, js jetstream.JetStream) Check {
	return func(ctx context.Context) error {
		if !nc.IsConnected() {
			return fmt.Errorf("nats: %s", nc.Status())
		}
		st, err := js.Stream(ctx, topology.EventsStream)
		if err != nil {
			return fmt.Errorf("stream %s: %w", topology.EventsStream, err)
		}
		if c := st.CachedInfo().Cluster; c != nil && c.Leader == "" {
			return fmt.Errorf("stream %s has no leader", topology.EventsStream)
		}
		return nil
	}
}
