package ops_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/grantline/grantline/pkg/ops"
)

func readyz(t *testing.T, url string) (int, map[string]string) {
	t.Helper()
	code, body := get(t, url+"/readyz")
	var parsed struct {
		Checks map[string]string `json:"checks"`
	}
	if err := json.Unmarshal([]byte(body), &parsed); err != nil {
		t.Fatalf("/readyz body %q is not JSON: %v", body, err)
	}
	if parsed.Checks == nil {
		t.Fatalf("/readyz body %q has no checks object", body)
	}
	return code, parsed.Checks
}

func pass(context.Context) error { return nil }

func TestReadyzNoChecks(t *testing.T) {
	t.Parallel()
	_, srv := newTestServer(t, ops.Options{})
	code, checks := readyz(t, srv.URL)
	if code != http.StatusOK || len(checks) != 0 {
		t.Fatalf("/readyz = %d %v, want 200 {}", code, checks)
	}
}

func TestReadyzAllPass(t *testing.T) {
	t.Parallel()
	h, srv := newTestServer(t, ops.Options{})
	h.SetCheck("nats", pass)
	h.SetCheck("postgres", pass)

	code, checks := readyz(t, srv.URL)
	want := map[string]string{"nats": "ok", "postgres": "ok"}
	if code != http.StatusOK || !reflect.DeepEqual(checks, want) {
		t.Fatalf("/readyz = %d %v, want 200 %v", code, checks, want)
	}
}

func TestReadyzFailingCheck(t *testing.T) {
	t.Parallel()
	h, srv := newTestServer(t, ops.Options{})
	h.SetCheck("nats", pass)
	h.SetCheck("postgres", func(context.Context) error {
		return errors.New("ping postgres: connection refused")
	})

	code, checks := readyz(t, srv.URL)
	want := map[string]string{"nats": "ok", "postgres": "ping postgres: connection refused"}
	if code != http.StatusServiceUnavailable || !reflect.DeepEqual(checks, want) {
		t.Fatalf("/readyz = %d %v, want 503 %v", code, checks, want)
	}
}

func TestReadyzTimesOutHangingChecks(t *testing.T) {
	t.Parallel()
	const timeout = 100 * time.Millisecond
	h, srv := newTestServer(t, ops.Options{CheckTimeout: timeout})
	// One check ignores its context entirely; it is released only when the
	// test ends, so the request must not wait for it.
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	h.SetCheck("stuck", func(context.Context) error {
		<-release
		return nil
	})
	// The other honours its context, returning only when the timeout hits.
	h.SetCheck("slow", func(ctx context.Context) error {
		<-ctx.Done()
		return ctx.Err()
	})
	h.SetCheck("nats", pass)

	start := time.Now()
	code, checks := readyz(t, srv.URL)
	elapsed := time.Since(start)

	if code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz = %d, want 503", code)
	}
	// Generous bound: the point is that it returns near the timeout and
	// does not wait for the stuck check, not the exact latency.
	if elapsed > timeout+2*time.Second {
		t.Fatalf("/readyz took %s with check timeout %s", elapsed, timeout)
	}
	for _, name := range []string{"stuck", "slow"} {
		msg := checks[name]
		if !strings.Contains(msg, "timed out after 100ms") || !strings.Contains(msg, "context deadline exceeded") {
			t.Errorf("check %q reported %q, want a timeout message", name, msg)
		}
	}
	if checks["nats"] != "ok" {
		t.Errorf("check nats reported %q, want ok", checks["nats"])
	}
}

func TestReadyzRecoversPanickingCheck(t *testing.T) {
	t.Parallel()
	h, srv := newTestServer(t, ops.Options{})
	h.SetCheck("broken", func(context.Context) error { panic("boom") })

	code, checks := readyz(t, srv.URL)
	if code != http.StatusServiceUnavailable || !strings.Contains(checks["broken"], "boom") {
		t.Fatalf("/readyz = %d %v, want 503 with the panic message", code, checks)
	}
}

// A service registers a failing check up front and replaces it once its
// consumers are attached, which must take effect while serving.
func TestSetCheckWhileServing(t *testing.T) {
	t.Parallel()
	h, srv := newTestServer(t, ops.Options{})
	h.SetCheck("consumers", func(context.Context) error { return errors.New("consumers not attached") })

	if code, checks := readyz(t, srv.URL); code != http.StatusServiceUnavailable || checks["consumers"] != "consumers not attached" {
		t.Fatalf("before attach: /readyz = %d %v, want 503", code, checks)
	}

	h.SetCheck("consumers", pass)
	if code, checks := readyz(t, srv.URL); code != http.StatusOK || checks["consumers"] != "ok" {
		t.Fatalf("after attach: /readyz = %d %v, want 200", code, checks)
	}

	h.SetCheck("consumers", nil)
	if code, checks := readyz(t, srv.URL); code != http.StatusOK || len(checks) != 0 {
		t.Fatalf("after removal: /readyz = %d %v, want 200 {}", code, checks)
	}
}

func TestSetCheckEmptyNamePanics(t *testing.T) {
	t.Parallel()
	h, err := ops.New(ops.Options{Service: "test"})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("SetCheck(\"\") did not panic")
		}
	}()
	h.SetCheck("", pass)
}
