package ops

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

const (
	// DefaultShutdownTimeout is how long Serve waits for in-flight requests
	// after its context is cancelled before closing their connections.
	DefaultShutdownTimeout = 5 * time.Second
	// ReadHeaderTimeout bounds reading a request's headers, so that slow or
	// idle clients cannot hold connections open indefinitely (Slowloris).
	ReadHeaderTimeout = 5 * time.Second
)

// Server is an HTTP server bound to a listener; create it with Listen and run
// it with Serve.
type Server struct {
	// ShutdownTimeout bounds graceful shutdown; set it before Serve. Listen
	// sets it to DefaultShutdownTimeout.
	ShutdownTimeout time.Duration

	srv    *http.Server
	ln     net.Listener
	log    *slog.Logger
	served atomic.Bool
}

// Listen binds addr (such as ":8081" or "127.0.0.1:0", for which the kernel
// picks a free port, see Addr) and returns a Server that will serve h on it.
// Binding before serving lets callers learn the address and fail fast on a
// port already in use. log receives the server's lifecycle and connection
// errors; nil discards them. It returns the bind error, wrapped.
func Listen(addr string, h http.Handler, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("ops: listen on %q: %w", addr, err)
	}
	return &Server{
		ShutdownTimeout: DefaultShutdownTimeout,
		srv: &http.Server{
			Handler:           h,
			ReadHeaderTimeout: ReadHeaderTimeout,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		},
		ln:  ln,
		log: log,
	}, nil
}

// Addr returns the bound address, e.g. "127.0.0.1:43817", with the real port
// when Listen was given port 0.
func (s *Server) Addr() string {
	return s.ln.Addr().String()
}

// Serve serves until ctx is cancelled, then stops accepting connections and
// waits up to ShutdownTimeout for in-flight requests before closing what
// remains. It returns only after the serving goroutine has ended: nil after
// a graceful shutdown, a wrapped error if serving failed or shutdown ran out
// of time. It may be called once; a second call returns an error. Calling it
// with an already cancelled ctx just releases the listener.
func (s *Server) Serve(ctx context.Context) error {
	if !s.served.CompareAndSwap(false, true) {
		return fmt.Errorf("ops: server on %s: Serve called twice", s.Addr())
	}
	addr := s.Addr()
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
	s.log.Info("ops server listening", slog.String("addr", addr))

	select {
	case err := <-errc:
		// Nothing has called Shutdown yet, so this is a real failure, such as
		// the listener breaking.
		return fmt.Errorf("ops: serve on %s: %w", addr, err)
	case <-ctx.Done():
	}

	// The parent ctx is already cancelled, so the shutdown deadline needs a
	// fresh context; WithoutCancel keeps its values for logging/tracing.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.ShutdownTimeout)
	defer cancel()
	shutdownErr := s.srv.Shutdown(sctx)
	if shutdownErr != nil {
		// Out of time: drop the remaining connections so Serve's goroutine
		// and its handlers' connections do not outlive this call.
		_ = s.srv.Close()
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("ops: serve on %s: %w", addr, err)
	}
	if shutdownErr != nil {
		return fmt.Errorf("ops: graceful shutdown of %s after %s: %w", addr, s.ShutdownTimeout, shutdownErr)
	}
	s.log.Info("ops server stopped", slog.String("addr", addr))
	return nil
}
