package ops

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"time"
)

// PprofAddrEnv names the environment variable that turns on Go's profiling endpoints for a service
// process (config.Base.PprofAddr, passed to New as Options.PprofAddr). Set to an address such as
// 127.0.0.1:6061 (port 0 picks one), the process serves net/http/pprof's /debug/pprof/ there, on a
// listener of its own, until its Handler shuts down. It is off by default: profiles reveal the code's
// hot paths, goroutine stacks and command line, so bind it to loopback. `grantline bench --profile`
// uses it to see where a service spends its CPU under load.
const PprofAddrEnv = "GRANTLINE_PPROF_ADDR"

// pprofServer is the profiling listener a Handler owns.
type pprofServer struct {
	srv    *http.Server
	addr   string
	served chan struct{}
	once   sync.Once
}

// startPprof serves the profiling endpoints on addr.
func startPprof(addr string, log *slog.Logger) (*pprofServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("ops: %s=%s: %w", PprofAddrEnv, addr, err)
	}
	// net/http/pprof also registers itself on http.DefaultServeMux when imported; no Grantline server
	// serves that mux, so the endpoints exist only on this listener.
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	p := &pprofServer{
		// No write timeout: a CPU profile answers only after the seconds it was asked for.
		srv:    &http.Server{Handler: mux, ReadHeaderTimeout: ReadHeaderTimeout, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)},
		addr:   ln.Addr().String(),
		served: make(chan struct{}),
	}
	go func() {
		defer close(p.served)
		if err := p.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			log.Error("profiling endpoints stopped", slog.String("error", err.Error()))
		}
	}()
	log.Info("profiling endpoints listening", slog.String("addr", p.addr))
	return p, nil
}

// stop closes the listener and any profile being taken and waits for the server to end. It may be
// called more than once.
func (p *pprofServer) stop() {
	p.once.Do(func() {
		_ = p.srv.Close()
		select {
		case <-p.served:
		case <-time.After(DefaultShutdownTimeout):
		}
	})
}
