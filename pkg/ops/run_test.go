package ops

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/brokeraccess"
	"github.com/grantline/grantline/pkg/config"
	"github.com/grantline/grantline/pkg/eventstore"
	"github.com/grantline/grantline/pkg/natsembed"
	"github.com/grantline/grantline/pkg/natstest"
	"github.com/grantline/grantline/pkg/poll"
	"github.com/grantline/grantline/pkg/topology"
)

// logs is a concurrency-safe log sink.
type logs struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logs) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.b.Write(p) }
func (l *logs) String() string              { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// freePort is a port nothing listens on yet.
func freePort(t *testing.T) int {
	t.Helper()
	port, err := strconv.Atoi(freeAddr(t)[len("127.0.0.1:"):])
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// startNATS runs a JetStream server on the given ports, with the streams provisioned when provision
// is set. With lazy, it does not fsync each write.
func startNATS(t *testing.T, port, monitorPort int, provision, lazy bool) {
	t.Helper()
	ns, err := natsembed.Start(natsembed.Options{Dir: t.TempDir(), Host: "127.0.0.1", Port: port, HTTPPort: monitorPort, LazySync: lazy})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	if !provision {
		return
	}
	_, js := natstest.Connect(t, ns.ClientURL())
	if err := eventstore.Provision(context.Background(), js, eventstore.DefaultSettings); err != nil {
		t.Fatal(err)
	}
}

func base(natsPort, monitorPort int, start time.Duration) config.Base {
	return config.Base{
		NATS: config.NATS{URL: fmt.Sprintf("nats://127.0.0.1:%d", natsPort),
			MonitorURLs: config.List{fmt.Sprintf("http://127.0.0.1:%d", monitorPort)}, Timeout: 5 * time.Second},
		HTTPAddr: "127.0.0.1:0", StartTimeout: start, ShutdownTimeout: 5 * time.Second,
	}
}

// reader is a service with one route that reads a stream through the connection Run dialled.
func reader(host Host) (Service, error) {
	return Service{Name: "reader", Routes: func(mux *http.ServeMux) {
		mux.HandleFunc("GET /v1/streams", func(w http.ResponseWriter, r *http.Request) {
			st, err := host.Conn.JS.Stream(r.Context(), topology.EventsStream)
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			_, _ = io.WriteString(w, st.CachedInfo().Config.Name)
		})
	}}, nil
}

// TestRunWaitsForNATS: a service started before its broker retries until the broker answers, then
// serves; a stop ends it cleanly.
func TestRunWaitsForNATS(t *testing.T) {
	natsPort, monitorPort := freePort(t), freePort(t)
	out := &logs{}
	log := slog.New(slog.NewJSONHandler(out, nil))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, base(natsPort, monitorPort, time.Minute), ReadsAs(brokeraccess.Query), log,
			func(_ context.Context, host Host) (Service, error) { return reader(host) })
	}()
	t.Cleanup(func() { cancel(); <-done })
	poll.Until(t, 20*time.Second, "a retry while NATS is down", func() bool {
		return strings.Contains(out.String(), "broker not ready; retrying")
	})
	startNATS(t, natsPort, monitorPort, true, false)

	var addr string
	poll.Until(t, 30*time.Second, "the service to listen", func() bool {
		select {
		case err := <-done:
			done <- err
			t.Fatalf("Run ended: %v\n%s", err, out.String())
		default:
		}
		_, after, ok := strings.Cut(out.String(), `"msg":"ops server listening","addr":"`)
		addr, _, _ = strings.Cut(after, `"`)
		return ok
	})
	code, body := status(t, "http://"+addr+"/v1/streams")
	if code != http.StatusOK || body != topology.EventsStream {
		t.Fatalf("the service's route through its connection: %d %s\n%s", code, body, out.String())
	}
	if code, body := status(t, "http://"+addr+"/readyz"); code != http.StatusOK || !strings.Contains(body, `"reader/nats":"ok"`) {
		t.Fatalf("/readyz: %d %s", code, body)
	}
	cancel()
	select {
	case err := <-done:
		done <- err
		if err != nil {
			t.Fatalf("Run after a stop: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not stop")
	}
}

// TestRunGivesUp: start-up retries only what may pass on its own, and only for StartTimeout.
func TestRunGivesUp(t *testing.T) {
	// running starts a server as startNATS does and returns the base that reaches it.
	running := func(provision, lazy bool) func(*testing.T) config.Base {
		return func(t *testing.T) config.Base {
			natsPort, monitorPort := freePort(t), freePort(t)
			startNATS(t, natsPort, monitorPort, provision, lazy)
			return base(natsPort, monitorPort, time.Minute)
		}
	}
	tests := []struct {
		name   string
		base   func(*testing.T) config.Base
		within time.Duration
		want   string
	}{
		{name: "no broker within the start timeout", within: 15 * time.Second, want: "no servers available",
			base: func(t *testing.T) config.Base { return base(freePort(t), freePort(t), 2*time.Second) }},
		{name: "streams never provisioned: at once, not after a minute", base: running(false, false), within: 15 * time.Second,
			want: "does not exist; provision the streams first"},
		{name: "a server that does not fsync every write: at once", base: running(true, true), within: 15 * time.Second,
			want: "does not fsync every write"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			built := false
			start := time.Now()
			err := Run(context.Background(), tt.base(t), ReadsAs(brokeraccess.Query), slog.New(slog.DiscardHandler),
				func(context.Context, Host) (Service, error) { built = true; return Service{}, nil })
			if err == nil || !strings.Contains(err.Error(), tt.want) || built {
				t.Fatalf("Run = %v (built: %v), want an error saying %q", err, built, tt.want)
			}
			if took := time.Since(start); took > tt.within {
				t.Fatalf("Run took %s to give up", took)
			}
		})
	}
}

// TestRunWaitsForItsDatabase: a service whose database does not answer yet when it is built is built
// again with backoff, saying what it waits for, and then serves; one that fails for good is not.
func TestRunWaitsForItsDatabase(t *testing.T) {
	natsPort, monitorPort := freePort(t), freePort(t)
	startNATS(t, natsPort, monitorPort, true, false)
	closed := fmt.Sprintf("postgres://grantline@127.0.0.1:%d/grantline?connect_timeout=2", freePort(t))
	out := &logs{}
	log := slog.New(slog.NewJSONHandler(out, nil))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var builds int
	go func() {
		done <- Run(ctx, base(natsPort, monitorPort, time.Minute), ReadsAs(brokeraccess.Query), log,
			func(ctx context.Context, host Host) (Service, error) {
				if builds++; builds < 3 {
					// What a service's New meets while its database is still down.
					conn, err := pgx.Connect(ctx, closed)
					if err == nil {
						_ = conn.Close(ctx)
						return Service{}, errors.New("connected to a closed port")
					}
					return Service{}, fmt.Errorf("database: %w", err)
				}
				return reader(host)
			})
	}()
	t.Cleanup(func() { cancel(); <-done })
	poll.Until(t, 30*time.Second, "the service to listen", func() bool {
		select {
		case err := <-done:
			done <- err
			t.Fatalf("Run ended: %v\n%s", err, out.String())
		default:
		}
		return strings.Contains(out.String(), "ops server listening")
	})
	if n := strings.Count(out.String(), "a dependency not ready; retrying"); n != 2 || !strings.Contains(out.String(), "database: ") {
		t.Fatalf("%d retries logged, want 2 naming the database:\n%s", n, out.String())
	}

	tries := 0
	err := Run(context.Background(), base(natsPort, monitorPort, time.Minute), ReadsAs(brokeraccess.Query), slog.New(slog.DiscardHandler),
		func(context.Context, Host) (Service, error) {
			tries++
			return Service{}, fmt.Errorf("database: %w", &pgconn.PgError{Code: "28P01", Message: "password authentication failed"})
		})
	if err == nil || tries != 1 {
		t.Fatalf("a refused password: Run = %v after %d builds, want an error after one", err, tries)
	}
}

// TestTransient: what start-up retries is what a broker that is starting or electing a leader
// answers, as Dial's steps wrap it; what a retry cannot fix fails at once.
func TestTransient(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"no server reachable", fmt.Errorf("connect to nats: %w", nats.ErrNoServers), true},
		{"a stream lookup timing out", fmt.Errorf("look up stream GRANTLINE_EVENTS: %w", context.DeadlineExceeded), true},
		{"a request timing out", nats.ErrTimeout, true},
		{"no responder yet", fmt.Errorf("look up stream GRANTLINE_EVENTS: %w", nats.ErrNoResponders), true},
		{"JetStream temporarily unavailable", &jetstream.APIError{Code: http.StatusServiceUnavailable, ErrorCode: 10008}, true},
		{"a monitoring endpoint not answering", fmt.Errorf("check nats durability: %w", &net.OpError{Op: "dial", Err: errors.New("connection refused")}), true},
		{"streams never provisioned", fmt.Errorf("stream GRANTLINE_EVENTS does not exist: %w", eventstore.ErrMisconfigured), false},
		{"a server that does not fsync", eventstore.ErrNotDurable, false},
		{"another service's key", errors.New(`signing key "approval-1" belongs to approval, not policy`), false},
		{"a permission refused", &jetstream.APIError{Code: http.StatusForbidden}, false},
		{"PostgreSQL starting up", fmt.Errorf("database: %w", &pgconn.PgError{Code: "57P03"}), true},
		{"PostgreSQL refusing the password", fmt.Errorf("database: %w", &pgconn.PgError{Code: "28P01"}), false},
	} {
		if got := transient(tc.err); got != tc.want {
			t.Errorf("%s: transient = %v, want %v", tc.name, got, tc.want)
		}
	}
}
