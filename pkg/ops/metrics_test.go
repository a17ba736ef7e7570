package ops_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/grantline/grantline/pkg/ops"
)

func TestMetricsExposesMeterAndRuntime(t *testing.T) {
	t.Parallel()
	h, srv := newTestServer(t, ops.Options{Service: "approvals"})
	counter, err := h.MeterProvider().Meter("grantline/approvals").Int64Counter("grants_issued")
	if err != nil {
		t.Fatalf("create counter: %v", err)
	}
	counter.Add(t.Context(), 3)

	code, body := get(t, srv.URL+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics = %d, want 200", code)
	}
	if v, ok := metricValue(body, "grants_issued_total"); !ok || v != "3" {
		t.Errorf("grants_issued_total = %q (found %v), want 3", v, ok)
	}
	for _, name := range []string{"go_goroutines", "process_start_time_seconds"} {
		if _, ok := metricValue(body, name); !ok {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	if !strings.Contains(body, `service_name="approvals"`) {
		t.Errorf("/metrics lacks service_name=\"approvals\" on target_info:\n%s", body)
	}
}

// Several services share one process in dev mode; each must export only its
// own instruments even when they are named alike.
func TestTwoHandlersDoNotCollide(t *testing.T) {
	t.Parallel()
	urls := make([]string, 2)
	for i := range urls {
		h, srv := newTestServer(t, ops.Options{Service: "svc"})
		c, err := h.MeterProvider().Meter("grantline/svc").Int64Counter("requests_handled")
		if err != nil {
			t.Fatalf("handler %d: create counter: %v", i, err)
		}
		c.Add(t.Context(), int64(i+1))
		urls[i] = srv.URL
	}
	for i, url := range urls {
		_, body := get(t, url+"/metrics")
		want := []string{"1", "2"}[i]
		if v, ok := metricValue(body, "requests_handled_total"); !ok || v != want {
			t.Errorf("handler %d: requests_handled_total = %q (found %v), want %s", i, v, ok, want)
		}
	}
}
