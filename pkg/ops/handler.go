package ops

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// DefaultCheckTimeout bounds each readiness check when Options.CheckTimeout
// is zero. It is below Kubernetes' default probe timeout of one second, so
// that a hung dependency is reported by name in the /readyz body instead of
// surfacing as an anonymous probe timeout.
const DefaultCheckTimeout = 800 * time.Millisecond

// Options configures New.
type Options struct {
	// Service is the service name, exported as the service.name resource
	// attribute (Prometheus target_info). Required.
	Service string
	// CheckTimeout bounds each readiness check; zero means
	// DefaultCheckTimeout.
	CheckTimeout time.Duration
	// Logger receives errors met while gathering metrics. Nil discards them.
	Logger *slog.Logger
	// PprofAddr, when set, serves Go's profiling endpoints there (see PprofAddrEnv).
	PprofAddr string
}

// Handler is the http.Handler for /livez, /readyz and /metrics of one
// service. It is safe for concurrent use; create it with New.
type Handler struct {
	mux          *http.ServeMux
	registry     *prometheus.Registry
	provider     *sdkmetric.MeterProvider
	checkTimeout time.Duration

	mu     sync.RWMutex
	checks map[string]Check

	// pprof is the profiling listener this handler serves (Options.PprofAddr); nil when off.
	pprof *pprofServer
}

// New returns a Handler with no readiness checks (so /readyz answers 200
// until checks are added with SetCheck) and a fresh metrics pipeline. With
// opts.PprofAddr set, it also serves the profiling endpoints there until
// Shutdown. It fails if opts.Service is empty, opts.CheckTimeout is
// negative, the metrics pipeline cannot be built, or the profiling address
// cannot be bound.
func New(opts Options) (*Handler, error) {
	if opts.Service == "" {
		return nil, errors.New("ops: Options.Service is required")
	}
	if opts.CheckTimeout < 0 {
		return nil, fmt.Errorf("ops: negative CheckTimeout %s", opts.CheckTimeout)
	}
	if opts.CheckTimeout == 0 {
		opts.CheckTimeout = DefaultCheckTimeout
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	reg, provider, err := newMetrics(opts.Service)
	if err != nil {
		return nil, fmt.Errorf("ops: metrics for service %q: %w", opts.Service, err)
	}
	var profiling *pprofServer
	if opts.PprofAddr != "" {
		if profiling, err = startPprof(opts.PprofAddr, log); err != nil {
			_ = provider.Shutdown(context.Background())
			return nil, err
		}
	}
	h := &Handler{
		mux:          http.NewServeMux(),
		registry:     reg,
		provider:     provider,
		checkTimeout: opts.CheckTimeout,
		checks:       make(map[string]Check),
		pprof:        profiling,
	}
	// "GET" patterns also match HEAD; other methods get 405 from the mux.
	h.mux.HandleFunc("GET /livez", serveLive)
	h.mux.HandleFunc("GET /readyz", h.serveReady)
	h.mux.Handle("GET /metrics", metricsHandler(reg, log))
	return h, nil
}

// ServeHTTP routes to /livez, /readyz and /metrics; other paths get 404.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mux.ServeHTTP(w, r)
}

// MeterProvider returns the provider whose instruments are exported on this
// handler's /metrics. Services create their counters and histograms from it,
// e.g. h.MeterProvider().Meter("grantline/approvals").
func (h *Handler) MeterProvider() metric.MeterProvider {
	return h.provider
}

// PprofAddr is the bound address of the profiling endpoints this handler
// serves (see PprofAddrEnv), or "" when it serves none.
func (h *Handler) PprofAddr() string {
	if h.pprof == nil {
		return ""
	}
	return h.pprof.addr
}

// Shutdown stops the metrics pipeline and the profiling endpoints;
// instruments created from MeterProvider become no-ops and /metrics then
// serves only the Go and process collectors. It returns the provider's
// shutdown error, if any.
func (h *Handler) Shutdown(ctx context.Context) error {
	if h.pprof != nil {
		h.pprof.stop()
	}
	if err := h.provider.Shutdown(ctx); err != nil {
		return fmt.Errorf("ops: shut down meter provider: %w", err)
	}
	return nil
}

func serveLive(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = io.WriteString(w, "ok")
}
