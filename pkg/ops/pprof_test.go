package ops_test

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/grantline/grantline/pkg/ops"
)

// TestPprofIsOffByDefault: without an address, a service serves no profiling endpoints.
func TestPprofIsOffByDefault(t *testing.T) {
	h, err := ops.New(ops.Options{Service: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Shutdown(t.Context()) })
	if addr := h.PprofAddr(); addr != "" {
		t.Fatalf("profiling endpoints on %s without %s", addr, ops.PprofAddrEnv)
	}
}

// TestPprofServesACPUProfileUntilShutdown: the handler serves a real CPU profile on its own listener;
// shutting it down closes the endpoints.
func TestPprofServesACPUProfileUntilShutdown(t *testing.T) {
	h, err := ops.New(ops.Options{Service: "test", PprofAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	addr := h.PprofAddr()
	if addr == "" {
		t.Fatal("no profiling endpoints with an address set")
	}
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get("http://" + addr + "/debug/pprof/profile?seconds=1")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	// A CPU profile is a gzipped protocol buffer.
	if resp.StatusCode != http.StatusOK || !bytes.HasPrefix(body, []byte{0x1f, 0x8b}) {
		t.Fatalf("GET /debug/pprof/profile = %d, %d bytes starting %q; want 200 and a gzipped profile", resp.StatusCode, len(body), body[:min(len(body), 16)])
	}
	if err := h.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if resp, err := client.Get("http://" + addr + "/debug/pprof/"); err == nil {
		resp.Body.Close()
		t.Fatalf("profiling endpoints still answer %d after Shutdown", resp.StatusCode)
	}
}

// TestPprofOnABusyAddressFailsTheStart: an operator who asked for profiling on a taken port learns it
// at start, not when the profile is needed.
func TestPprofOnABusyAddressFailsTheStart(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	if h, err := ops.New(ops.Options{Service: "test", PprofAddr: busy.Addr().String()}); err == nil {
		_ = h.Shutdown(t.Context())
		t.Fatalf("New with %s on a busy port: no error", ops.PprofAddrEnv)
	}
}
