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

// TestPprofIsOffByDefault: without the variable, a service serves no profiling endpoints.
func TestPprofIsOffByDefault(t *testing.T) {
	t.Setenv(ops.PprofAddrEnv, "")
	h, err := ops.New(ops.Options{Service: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Shutdown(t.Context()) })
	if addr := h.PprofAddr(); addr != "" {
		t.Fatalf("profiling endpoints on %s without %s", addr, ops.PprofAddrEnv)
	}
}

// TestPprofServesOneCPUProfilePerProcess: the first handler serves a real CPU profile; a second
// handler in the same process (dev mode) does not fight it for the port; shutting the first down
// closes the endpoints and frees them for the next.
func TestPprofServesOneCPUProfilePerProcess(t *testing.T) {
	t.Setenv(ops.PprofAddrEnv, "127.0.0.1:0")
	first, err := ops.New(ops.Options{Service: "first"})
	if err != nil {
		t.Fatal(err)
	}
	addr := first.PprofAddr()
	if addr == "" {
		t.Fatalf("no profiling endpoints with %s set", ops.PprofAddrEnv)
	}
	second, err := ops.New(ops.Options{Service: "second"})
	if err != nil {
		t.Fatalf("a second handler in the process: %v", err)
	}
	t.Cleanup(func() { _ = second.Shutdown(t.Context()) })
	if second.PprofAddr() != "" {
		t.Fatalf("second handler also serves profiling endpoints on %s", second.PprofAddr())
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

	if err := first.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if resp, err := client.Get("http://" + addr + "/debug/pprof/"); err == nil {
		resp.Body.Close()
		t.Fatalf("profiling endpoints still answer %d after Shutdown", resp.StatusCode)
	}
	third, err := ops.New(ops.Options{Service: "third"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = third.Shutdown(t.Context()) })
	if third.PprofAddr() == "" {
		t.Fatal("the endpoints were not freed by the first handler's Shutdown")
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
	t.Setenv(ops.PprofAddrEnv, busy.Addr().String())
	if h, err := ops.New(ops.Options{Service: "test"}); err == nil {
		_ = h.Shutdown(t.Context())
		t.Fatalf("New with %s on a busy port: no error", ops.PprofAddrEnv)
	}
	t.Setenv(ops.PprofAddrEnv, "127.0.0.1:0")
	h, err := ops.New(ops.Options{Service: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = h.Shutdown(t.Context()) }()
	if h.PprofAddr() == "" {
		t.Fatal("a failed start kept the endpoints taken")
	}
}
