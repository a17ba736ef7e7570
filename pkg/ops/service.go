package ops

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/nats-io/nats.go"
)

// Service is one Grantline service process: its API, its readiness checks and its consumers.
type Service struct {
	Name string
	Addr string
	// Checks are the readiness checks /readyz runs, by name.
	Checks map[string]Check
	// Routes registers the service's API beside /livez, /readyz and /metrics.
	Routes func(mux *http.ServeMux)
	// Consume runs the service's consumers until its context ends; nil for a service without any.
	Consume func(ctx context.Context) error
}

// RunService serves the service's API and its operational endpoints on Addr and runs its consumers
// until ctx ends or either fails; it stops the other then, and returns when both have stopped, with
// the first error.
func RunService(ctx context.Context, s Service, log *slog.Logger) error {
	health, err := New(Options{Service: s.Name, Logger: log})
	if err != nil {
		return err
	}
	defer func() { _ = health.Shutdown(context.WithoutCancel(ctx)) }()
	for name, check := range s.Checks {
		health.SetCheck(name, check)
	}
	mux := http.NewServeMux()
	if s.Routes != nil {
		s.Routes(mux)
	}
	for _, p := range []string{"/livez", "/readyz", "/metrics"} {
		mux.Handle("GET "+p, health)
	}
	srv, err := Listen(s.Addr, mux, log)
	if err != nil {
		return err
	}
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	consumed := make(chan error, 1)
	go func() {
		if s.Consume == nil {
			<-ctx.Done()
			consumed <- nil
			return
		}
		err := s.Consume(ctx)
		stop()
		consumed <- err
	}()
	served := srv.Serve(ctx)
	stop()
	return errors.Join(<-consumed, served)
}

// NATSCheck is ready while nc is connected.
func NATSCheck(nc *nats.Conn) Check {
	return func(context.Context) error {
		if !nc.IsConnected() {
			return fmt.Errorf("nats: %s", nc.Status())
		}
		return nil
	}
}
