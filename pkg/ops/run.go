package ops

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/brokeraccess"
	"github.com/grantline/grantline/pkg/config"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/eventstore"
	"github.com/grantline/grantline/pkg/telemetry"
)

// Identity is who a service is on the broker: its NATS user and, for the five services that sign
// events, where its signing key is.
type Identity struct {
	user    brokeraccess.User
	signs   events.Service
	signing config.Signing
}

// SignsAs is the identity of svc, one of the services that sign events, with its key from key.
func SignsAs(svc events.Service, key config.Signing) Identity {
	return Identity{user: brokeraccess.User(svc), signs: svc, signing: key}
}

// ReadsAs is the identity of user u, which reads the evidence and signs nothing (the read side): its
// connection has no event store.
func ReadsAs(u brokeraccess.User) Identity { return Identity{user: u} }

// Build is a service package's New as Run calls it.
type Build func(ctx context.Context, host Host) (Service, error)

// Run is a service as a process of its own, the part of its main after the configuration: it dials
// NATS as the service's user (eventstore.Dial: signing key, trust file, streams, durability),
// retrying for up to base.StartTimeout while the servers are unreachable or do not answer yet;
// builds the service with build; serves it on base.HTTPAddr beside /livez, /readyz (with a check of
// the connection) and /metrics through Process.Serve; and at the end drains the connection, bounded
// by base.ShutdownTimeout. With base.OTLPEndpoint set it traces the process (TraceHTTP on every
// request) and exports its spans there, the last ones at the end. It returns what kept the service from starting or stopped it; nil after
// ctx ended.
func Run(ctx context.Context, base config.Base, id Identity, log *slog.Logger, build Build) error {
	name := string(id.user)
	health, err := New(Options{Service: name, Logger: log, PprofAddr: base.PprofAddr})
	if err != nil {
		return err
	}
	defer func() { _ = health.Shutdown(context.WithoutCancel(ctx)) }()
	stopTracing, err := startTracing(ctx, base.OTLPEndpoint, "grantline-"+name)
	if err != nil {
		return err
	}
	defer func() {
		flushCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), base.ShutdownTimeout)
		defer cancel()
		if err := stopTracing(flushCtx); err != nil {
			log.Warn("export the last spans", telemetry.KeyError, err.Error())
		}
	}()
	conn, err := Dial(ctx, base, id, log)
	if err != nil {
		return err
	}
	defer closeConn(conn.NC, base.ShutdownTimeout)
	host := Host{Conn: conn, Meter: health.MeterProvider(), Log: log, AckWait: base.AckWait}
	// Building opens the service's database and targets: one that is still starting is waited for.
	svc, err := retryStart(ctx, base.StartTimeout, log, "a dependency not ready",
		func() (Service, error) { return build(ctx, host) })
	if err != nil {
		return fmt.Errorf("%s: %w", id.user, err)
	}
	if svc.Checks == nil {
		svc.Checks = map[string]Check{}
	}
	svc.Checks["nats"] = BrokerCheck(conn.NC, conn.JS)
	mux := http.NewServeMux()
	var handler http.Handler = mux
	if base.OTLPEndpoint != "" {
		handler = TraceHTTP(mux)
	}
	srv, err := Listen(base.HTTPAddr, handler, log)
	if err != nil {
		if svc.Close != nil {
			svc.Close()
		}
		return err
	}
	return Process{Server: srv, Mux: mux, Health: health, StopTimeout: base.ShutdownTimeout, Log: log}.Serve(ctx, svc)
}

// Dial connects to NATS as id (see Run), retrying for up to base.StartTimeout what a broker that is
// starting or electing a leader answers. Close the connection when done.
func Dial(ctx context.Context, base config.Base, id Identity, log *slog.Logger) (*eventstore.Connection, error) {
	conn, err := retryStart(ctx, base.StartTimeout, log, "broker not ready", func() (*eventstore.Connection, error) { return id.dial(ctx, base) })
	if err != nil {
		return nil, fmt.Errorf("%s: %w", id.user, err)
	}
	return conn, nil
}

// retryStart runs a start-up step until it succeeds, fails in a way no retry fixes (transient), or
// within has passed, with exponential backoff; each retry logs what it waits for and when it tries
// again.
func retryStart[T any](ctx context.Context, within time.Duration, log *slog.Logger, waiting string, step func() (T, error)) (T, error) {
	attempt := func() (T, error) {
		v, err := step()
		if err != nil && !transient(err) {
			return v, backoff.Permanent(err)
		}
		return v, err
	}
	return backoff.Retry(ctx, attempt, backoff.WithMaxElapsedTime(within),
		backoff.WithNotify(func(err error, wait time.Duration) {
			log.Warn(waiting+"; retrying", "error", err.Error(), "in", wait.Round(time.Millisecond).String())
		}))
}

// dial makes one attempt.
func (id Identity) dial(ctx context.Context, base config.Base) (*eventstore.Connection, error) {
	if id.signs != "" {
		return eventstore.Dial(ctx, eventstore.DialConfig{Service: id.signs, Getenv: id.signing.Getenv, TrustFile: base.TrustFile,
			NATSURL: base.NATS.URL, MonitorURLs: base.NATS.MonitorURLs, NKeyFile: base.NATS.NKeyFile, RequestTimeout: base.NATS.Timeout})
	}
	opts, err := brokeraccess.ClientOptions(id.user, base.NATS.NKeyFile)
	if err != nil {
		return nil, err
	}
	nc, err := nats.Connect(base.NATS.URL, append(opts, nats.Name("grantline-"+string(id.user)), nats.MaxReconnects(-1))...)
	if err != nil {
		return nil, fmt.Errorf("connect to nats: %w", err)
	}
	js, err := jetstream.New(nc)
	if err == nil {
		err = eventstore.Check(ctx, js)
	}
	if err == nil {
		// A reader signs nothing, but what it serves must not vanish in a power cut either.
		err = eventstore.CheckDurability(ctx, eventstore.MonitorProbe(http.DefaultClient, base.NATS.MonitorURLs...))
	}
	if err != nil {
		nc.Close()
		return nil, err
	}
	return &eventstore.Connection{NC: nc, JS: js}, nil
}

// transient says whether a failed start may succeed on its own soon: no server reachable yet, a
// request that timed out or found no responder (JetStream starting, a stream electing its leader),
// a monitoring endpoint or a database not answering yet, or a PostgreSQL server still starting or
// recovering (SQLSTATE 57P03). A missing stream, a bad key, a refused password or a server that does
// not fsync is not: retrying would only delay the error.
func transient(err error) bool {
	var apiErr *jetstream.APIError
	var netErr net.Error
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr):
		return pgErr.Code == "57P03" // cannot_connect_now: starting up, shutting down or recovering
	case errors.Is(err, nats.ErrNoServers), errors.Is(err, nats.ErrTimeout), errors.Is(err, nats.ErrNoResponders),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, jetstream.ErrJetStreamNotEnabled):
		return true
	case errors.As(err, &apiErr):
		return apiErr.Code == http.StatusServiceUnavailable
	case errors.As(err, &netErr):
		return true
	}
	return false
}

// closeConn drains nc, so what it still has to send is sent, and closes it if that takes longer
// than within.
func closeConn(nc *nats.Conn, within time.Duration) {
	if nc.IsClosed() {
		return
	}
	closed := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	if err := nc.Drain(); err != nil {
		nc.Close()
		return
	}
	select {
	case <-closed:
	case <-time.After(within):
		nc.Close()
	}
}
