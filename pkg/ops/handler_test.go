package ops_test

import (
	"net/http"
	"testing"

	"github.com/grantline/grantline/pkg/ops"
)

func TestLivez(t *testing.T) {
	t.Parallel()
	_, srv := newTestServer(t, ops.Options{})

	code, body := get(t, srv.URL+"/livez")
	if code != http.StatusOK || body != "ok" {
		t.Fatalf("GET /livez = %d %q, want 200 \"ok\"", code, body)
	}

	resp, err := srv.Client().Post(srv.URL+"/livez", "text/plain", nil)
	if err != nil {
		t.Fatalf("POST /livez: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST /livez = %d, want 405", resp.StatusCode)
	}
}

func TestUnknownPath(t *testing.T) {
	t.Parallel()
	_, srv := newTestServer(t, ops.Options{})
	if code, _ := get(t, srv.URL+"/nope"); code != http.StatusNotFound {
		t.Fatalf("GET /nope = %d, want 404", code)
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	t.Parallel()
	if _, err := ops.New(ops.Options{}); err == nil {
		t.Error("New without Service: want error")
	}
	if _, err := ops.New(ops.Options{Service: "x", CheckTimeout: -1}); err == nil {
		t.Error("New with negative CheckTimeout: want error")
	}
}
