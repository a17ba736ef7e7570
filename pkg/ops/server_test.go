package ops_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/grantline/grantline/pkg/ops"
)

// serveAsync runs s.Serve in a goroutine and returns its result channel.
func serveAsync(ctx context.Context, s *ops.Server) <-chan error {
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(ctx) }()
	return errc
}

// awaitServe waits, bounded, for Serve to return.
func awaitServe(t *testing.T, errc <-chan error) error {
	t.Helper()
	select {
	case err := <-errc:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after its context was cancelled")
		return nil
	}
}

func listenerClosed(addr string) func() bool {
	return func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return true
		}
		c.Close()
		return false
	}
}

func TestServeGracefulShutdown(t *testing.T) {
	h, err := ops.New(ops.Options{Service: "test"})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	entered := make(chan struct{})
	release := make(chan struct{})
	mux := http.NewServeMux()
	mux.Handle("/", h)
	mux.HandleFunc("/slow", func(w http.ResponseWriter, _ *http.Request) {
		close(entered)
		<-release
		io.WriteString(w, "done")
	})

	s, err := ops.Listen("127.0.0.1:0", mux, nil)
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	errc := serveAsync(ctx, s)

	// The listener is bound before Serve, so no polling is needed here.
	if code, body := get(t, "http://"+s.Addr()+"/livez"); code != http.StatusOK || body != "ok" {
		t.Fatalf("GET /livez = %d %q, want 200 ok", code, body)
	}

	type result struct {
		code int
		body string
	}
	slow := make(chan result, 1)
	go func() {
		resp, err := http.Get("http://" + s.Addr() + "/slow")
		if err != nil {
			slow <- result{body: err.Error()}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		slow <- result{resp.StatusCode, string(b)}
	}()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("slow request never reached the handler")
	}

	cancel()
	// Shutdown has begun once new connections are refused; the in-flight
	// request must still complete.
	waitUntil(t, 10*time.Second, "listener to close", listenerClosed(s.Addr()))
	close(release)

	if err := awaitServe(t, errc); err != nil {
		t.Fatalf("Serve = %v, want nil after graceful shutdown", err)
	}
	if r := <-slow; r.code != http.StatusOK || r.body != "done" {
		t.Fatalf("in-flight request = %d %q, want 200 done", r.code, r.body)
	}
}

func TestServeShutdownTimeout(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	h := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		close(entered)
		<-release
	})
	s, err := ops.Listen("127.0.0.1:0", h, nil)
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	s.ShutdownTimeout = 50 * time.Millisecond
	ctx, cancel := context.WithCancel(t.Context())
	errc := serveAsync(ctx, s)

	go func() {
		// Fails once Serve gives up on it; only its arrival matters.
		if resp, err := http.Get("http://" + s.Addr() + "/"); err == nil {
			resp.Body.Close()
		}
	}()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("request never reached the handler")
	}
	cancel()

	err = awaitServe(t, errc)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Serve = %v, want an error wrapping context.DeadlineExceeded", err)
	}
}

func TestServeTwice(t *testing.T) {
	s, err := ops.Listen("127.0.0.1:0", http.NotFoundHandler(), nil)
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.Serve(ctx); err != nil {
		t.Fatalf("first Serve with cancelled ctx = %v, want nil", err)
	}
	if err := s.Serve(ctx); err == nil {
		t.Fatal("second Serve: want error")
	}
	waitUntil(t, 10*time.Second, "listener to close", listenerClosed(s.Addr()))
}

func TestListenAddressInUse(t *testing.T) {
	s, err := ops.Listen("127.0.0.1:0", http.NotFoundHandler(), nil)
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	errc := serveAsync(ctx, s)
	defer func() {
		cancel()
		if err := awaitServe(t, errc); err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()

	if _, err := ops.Listen(s.Addr(), http.NotFoundHandler(), nil); err == nil {
		t.Fatalf("second Listen on %s: want address-in-use error", s.Addr())
	}
}
