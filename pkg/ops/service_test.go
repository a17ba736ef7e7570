package ops

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"
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

// TestRunServiceServesUntilCancelled: the API and the operational endpoints answer on one address, and
// cancelling stops serving and consuming.
func TestRunServiceServesUntilCancelled(t *testing.T) {
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	consuming := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- RunService(ctx, Service{Name: "test", Addr: addr,
			Checks: map[string]Check{"ok": func(context.Context) error { return nil }},
			Routes: func(mux *http.ServeMux) {
				mux.HandleFunc("GET /v1/hello", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "hi") })
			},
			Consume: func(ctx context.Context) error { close(consuming); <-ctx.Done(); return nil },
		}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()
	<-consuming
	for _, path := range []string{"/v1/hello", "/livez", "/readyz", "/metrics"} {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s answered %d", path, resp.StatusCode)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("RunService after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("RunService did not stop after cancel")
	}
}

// TestRunServiceStopsWhenConsumingFails: a service whose consumers died must not keep answering as if
// it were healthy.
func TestRunServiceStopsWhenConsumingFails(t *testing.T) {
	boom := errors.New("consumer setup failed")
	done := make(chan error, 1)
	go func() {
		done <- RunService(context.Background(), Service{Name: "test", Addr: freeAddr(t),
			Consume: func(context.Context) error { return boom }}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()
	select {
	case err := <-done:
		if !errors.Is(err, boom) {
			t.Fatalf("RunService = %v, want the consumer's error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("RunService kept serving after its consumers failed")
	}
}
