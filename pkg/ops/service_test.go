package ops

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/grantline/grantline/pkg/poll"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

var discard = slog.New(slog.DiscardHandler)

// process is a Process on a free loopback port, with its base URL.
func process(t *testing.T, stop time.Duration) (Process, string) {
	t.Helper()
	health, err := New(Options{Service: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = health.Shutdown(context.Background()) })
	mux := http.NewServeMux()
	srv, err := Listen("127.0.0.1:0", mux, discard)
	if err != nil {
		t.Fatal(err)
	}
	return Process{Server: srv, Mux: mux, Health: health, StopTimeout: stop, Log: discard}, "http://" + srv.Addr()
}

// serve runs p.Serve in the background; the returned channel yields its result.
func serve(t *testing.T, ctx context.Context, p Process, services ...Service) chan error {
	done := make(chan error, 1)
	go func() { done <- p.Serve(ctx, services...) }()
	t.Cleanup(func() {
		select {
		case err := <-done:
			done <- err
		case <-time.After(30 * time.Second):
			t.Error("Serve did not return")
		}
	})
	return done
}

func wait(t *testing.T, done chan error) error {
	t.Helper()
	select {
	case err := <-done:
		done <- err
		return err
	case <-time.After(20 * time.Second):
		t.Fatal("Serve did not return")
		return nil
	}
}

func status(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// journal records what services did, in order.
type journal struct {
	mu    sync.Mutex
	lines []string
}

func (j *journal) add(s string) { j.mu.Lock(); j.lines = append(j.lines, s); j.mu.Unlock() }
func (j *journal) all() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.lines)
}

// hello is a service with an API, a check and a consumer that runs until stopped.
func hello(name string, j *journal) Service {
	return Service{Name: name,
		Routes: func(mux *http.ServeMux) {
			mux.HandleFunc("GET /v1/"+name, func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "hi") })
		},
		Checks:  map[string]Check{"db": func(context.Context) error { return nil }},
		Consume: func(ctx context.Context) error { j.add(name + " consuming"); <-ctx.Done(); return nil },
		Close:   func() { j.add(name + " closed") },
	}
}

// TestServeRunsServicesTogether: two services' APIs, checks and consumers in one process on one
// origin; a stop closes them, the last built first.
func TestServeRunsServicesTogether(t *testing.T) {
	p, base := process(t, 5*time.Second)
	j := &journal{}
	ctx, cancel := context.WithCancel(context.Background())
	done := serve(t, ctx, p, hello("one", j), hello("two", j))
	poll.Until(t, 10*time.Second, "both consumers", func() bool { return len(j.all()) == 2 })
	for _, path := range []string{"/v1/one", "/v1/two", "/livez", "/readyz", "/metrics"} {
		if code, body := status(t, base+path); code != http.StatusOK {
			t.Errorf("%s answered %d %s", path, code, body)
		}
	}
	if _, body := status(t, base+"/readyz"); !strings.Contains(body, `"one/db":"ok"`) || !strings.Contains(body, `"two/db":"ok"`) {
		t.Errorf("/readyz does not name each service's check: %s", body)
	}
	cancel()
	if err := wait(t, done); err != nil {
		t.Fatalf("Serve after a stop: %v", err)
	}
	if got := j.all()[2:]; !slices.Equal(got, []string{"two closed", "one closed"}) {
		t.Errorf("closed %v, want the last built first", got)
	}
}

// TestServeStopsWhenAConsumerFails: a process whose consumers died must not keep answering as if it
// were healthy, and what its services opened is still released.
func TestServeStopsWhenAConsumerFails(t *testing.T) {
	p, _ := process(t, 5*time.Second)
	j := &journal{}
	boom := errors.New("consumer setup failed")
	failing := Service{Name: "failing", Consume: func(context.Context) error { return boom }, Close: func() { j.add("failing closed") }}
	err := wait(t, serve(t, context.Background(), p, hello("one", j), failing))
	if !errors.Is(err, boom) {
		t.Fatalf("Serve = %v, want the consumer's error", err)
	}
	if got := j.all(); !slices.Contains(got, "failing closed") || !slices.Contains(got, "one closed") {
		t.Errorf("after the failure: %v, want both services closed", got)
	}
}

// TestServeDrainsBeforeTheAPIStops: on a stop, /readyz turns 503 at once, and the API keeps answering
// while the consumers finish their work; only then does the server close.
func TestServeDrainsBeforeTheAPIStops(t *testing.T) {
	p, base := process(t, 10*time.Second)
	draining, release := make(chan struct{}), make(chan struct{})
	svc := hello("one", &journal{})
	svc.Consume = func(ctx context.Context) error {
		<-ctx.Done()
		close(draining)
		<-release
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := serve(t, ctx, p, svc)
	poll.Until(t, 10*time.Second, "the server", func() bool { code, _ := status(t, base+"/livez"); return code == http.StatusOK })
	cancel()
	<-draining
	poll.Until(t, 10*time.Second, "/readyz to say stopping", func() bool {
		code, body := status(t, base+"/readyz")
		return code == http.StatusServiceUnavailable && strings.Contains(body, `"stopping":"stopping"`)
	})
	if code, body := status(t, base+"/v1/one"); code != http.StatusOK {
		t.Errorf("the API during the drain answered %d %s", code, body)
	}
	close(release)
	if err := wait(t, done); err != nil {
		t.Fatalf("Serve after the drain: %v", err)
	}
	if code, _ := status(t, base+"/livez"); code != 0 {
		t.Errorf("the server still answers (%d) after Serve returned", code)
	}
}

// TestServeBoundsTheStop: consumers that do not drain in time do not hold the process.
func TestServeBoundsTheStop(t *testing.T) {
	p, _ := process(t, 200*time.Millisecond)
	stuck := make(chan struct{})
	t.Cleanup(func() { close(stuck) })
	svc := Service{Name: "stuck", Consume: func(context.Context) error { <-stuck; return nil }}
	ctx, cancel := context.WithCancel(context.Background())
	done := serve(t, ctx, p, svc)
	cancel()
	if err := wait(t, done); err == nil || !strings.Contains(err.Error(), "did not drain within 200ms") {
		t.Fatalf("Serve with a consumer that never stops = %v", err)
	}
}

func TestRunAll(t *testing.T) {
	boom := errors.New("boom")
	untilStopped := func(ctx context.Context) error { <-ctx.Done(); return nil }
	// earlyDone returns at once; afterIt reports whether its context was still live once earlyDone had
	// returned, then runs until stopped.
	early, live := make(chan struct{}), make(chan bool, 1)
	earlyDone := func(context.Context) error { close(early); return nil }
	afterIt := func(ctx context.Context) error { <-early; live <- ctx.Err() == nil; <-ctx.Done(); return nil }
	tests := []struct {
		name   string
		fns    []func(context.Context) error
		before func(cancel func()) // what happens before RunAll is awaited
		want   error
	}{
		{name: "the first failure stops the others", fns: []func(context.Context) error{
			untilStopped, func(context.Context) error { return boom }, untilStopped}, want: boom},
		{name: "one done early stops nothing", fns: []func(context.Context) error{earlyDone, afterIt}, before: func(cancel func()) {
			if !<-live {
				t.Error("a function that returned nil stopped the others")
			}
			cancel()
		}},
		{name: "a stop is not a failure, even mid-setup", fns: []func(context.Context) error{
			func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }}, before: func(cancel func()) { cancel() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- RunAll(ctx, tt.fns...) }()
			if tt.before != nil {
				tt.before(cancel)
			}
			select {
			case err := <-done:
				if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
					t.Fatalf("RunAll = %v, want %v", err, tt.want)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("RunAll did not return")
			}
		})
	}
}
