package cli

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// TestCreateAndReviewRetryWithTheirIdempotencyKey: the server answers 503 once (a replica died
// mid-request); request create, review approve and lock create send again, with the same
// Idempotency-Key they sent first, and succeed.
func TestCreateAndReviewRetryWithTheirIdempotencyKey(t *testing.T) {
	var mu sync.Mutex
	keys := map[string][]string{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		keys[r.URL.Path] = append(keys[r.URL.Path], r.Header.Get("Idempotency-Key"))
		n := len(keys[r.URL.Path])
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if n == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{"id":"01KB0000000000000000000001","status":"submitted","request_id":"01KB0000000000000000000001"}`))
	}))
	t.Cleanup(srv.Close)
	api := []string{"--server", srv.URL, "--token", "t"}
	if code, out := run(t, append([]string{"request", "create", "--entitlement", "analytics-read", "--duration", "1h", "--justification", "x"}, api...)...); code != 0 {
		t.Fatalf("create: exit %d: %s", code, out)
	}
	if code, out := run(t, append([]string{"review", "approve", "01KB0000000000000000000001"}, api...)...); code != 0 {
		t.Fatalf("approve: exit %d: %s", code, out)
	}
	if code, out := run(t, append([]string{"lock", "create", "--user", "alice", "--reason", "laptop stolen"}, api...)...); code != 0 {
		t.Fatalf("lock create: exit %d: %s", code, out)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, path := range []string{"/v1/requests", "/v1/requests/01KB0000000000000000000001/reviews", "/v1/locks"} {
		k := keys[path]
		if len(k) != 2 || k[0] == "" || k[0] != k[1] {
			t.Errorf("%s: sent keys %q, want the same fresh key twice", path, k)
		}
	}
}
