package ops

import (
	"context"
	"net/http"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"

	"github.com/grantline/grantline/pkg/telemetry"
)

// tracesFlushInterval bounds how long a finished span waits in the process before it is exported.
const tracesFlushInterval = 5 * time.Second

// startTracing exports the process's spans, as service's, to the OTLP/HTTP receiver at endpoint
// (telemetry.OTLPExporter); with no endpoint it does nothing, and spans cost next to nothing. The
// returned function exports what is left and stops.
func startTracing(ctx context.Context, endpoint, service string) (func(context.Context) error, error) {
	if endpoint == "" {
		return func(context.Context) error { return nil }, nil
	}
	exp, err := telemetry.OTLPExporter(ctx, endpoint)
	if err != nil {
		return nil, err
	}
	return telemetry.StartTracing(service, exp, tracesFlushInterval), nil
}

// TraceHTTP returns h with each request in a server span, named by the route that served it ("POST
// /v1/requests") and continuing the caller's trace when the request carries a traceparent header.
// Wrap the whole mux, only when tracing is on.
func TraceHTTP(h http.Handler) http.Handler {
	return otelhttp.NewHandler(h, "http", otelhttp.WithSpanNameFormatter(func(op string, r *http.Request) string {
		// The mux sets the pattern while routing; the span is renamed with it once the handler returns.
		if r.Pattern != "" {
			return r.Pattern
		}
		return r.Method
	}))
}
