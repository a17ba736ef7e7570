package ops

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"sync/atomic"
	"time"
)

// PprofAddrEnv names the environment variable that turns on Go's profiling endpoints for a service
// process. Set to an address such as 127.0.0.1:6061 (port 0 picks one), the first Handler the process
// creates serves net/http/pprof's /debug/pprof/ there, on a listener of its own, until that Handler
// shuts down. It is off by default: profiles reveal the code's hot paths, goroutine stacks and command
// line, so bind it to loopback. `grantline bench --profile` uses it to see where a service spends its
// CPU under load.
const PprofAddrEnv = "GRANTLINE_PPROF_ADDR"

// pprofTaken makes the endpoints one per process: the runtime has one CPU profiler, and dev mode
// creates a Handler per service in one process.
var pprofTaken atomic.Bool

// pprofServer is the profiling listener a Handler owns.
type pprofServer struct {
	srv    *http.Server
	addr   string
	served chan struct{}
	once   sync.Once
}

// startPprof serves the profiling endpoints on addr, or returns nil when another Handler of the process
// already does.
func startPprof(addr string, log *slog.Logger) (*pprofServer, error) {
	if !pprofTaken.CompareAndSwap(false, true) {
		log.Warn("profiling endpoints already served by another handler of this process", slog.String("env", PprofAddrEnv))
		return nil, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		pprofTaken.Store(false)
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

// stop closes the listener and any profile being taken, waits for the server to end, and frees the
// process's endpoints for another Handler. It may be called more than once.
func (p *pprofServer) stop() {
	p.once.Do(func() {
		_ = p.srv.Close()
		select {
		case <-p.served:
		case <-time.After(DefaultShutdownTimeout):
		}
		pprofTaken.Store(false)
	})
}
