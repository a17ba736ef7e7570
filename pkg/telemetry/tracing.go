package telemetry

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// TracesPath is where an OTLP/HTTP receiver takes spans, below its base URL.
const TracesPath = "/v1/traces"

// OTLPExporter returns an exporter that sends spans as OTLP/HTTP protobuf to endpoint, the base URL
// of a collector's OTLP/HTTP receiver such as http://otel-collector:4318 (TracesPath is added when
// the URL has no path, as OTEL_EXPORTER_OTLP_ENDPOINT is read). Plain http means no TLS. The
// standard OTEL_EXPORTER_OTLP_HEADERS, _CERTIFICATE, _COMPRESSION and _TIMEOUT variables still apply.
// It fails on a URL that is not absolute http or https.
func OTLPExporter(ctx context.Context, endpoint string) (sdktrace.SpanExporter, error) {
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("OTLP endpoint %q is not an http(s) URL such as http://otel-collector:4318", endpoint)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = TracesPath
	}
	return otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(u.String()))
}

// StdoutExporter returns an exporter that writes each span to w as one JSON object, for a person
// watching `grantline dev`.
func StdoutExporter(w io.Writer) (sdktrace.SpanExporter, error) {
	return stdouttrace.New(stdouttrace.WithWriter(w))
}

// StartTracing makes every span this process starts from now on (through otel.Tracer) recorded
// and exported to exp in batches, at most flushEvery apart, as spans of service (the service.name
// resource attribute). Until it is called, spans cost next to nothing: the global tracer provider
// is a no-op that only carries trace context along. The returned function exports what is still
// buffered within ctx, shuts exp down and puts the no-op back; call it once, at the end. It also
// installs the W3C propagator (InstallPropagator), without which no trace would cross a message.
func StartTracing(service string, exp sdktrace.SpanExporter, flushEvery time.Duration) func(ctx context.Context) error {
	InstallPropagator()
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(flushEvery)),
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", service))),
	)
	otel.SetTracerProvider(tp)
	tracing.Store(true)
	return func(ctx context.Context) error {
		tracing.Store(false)
		otel.SetTracerProvider(noop.NewTracerProvider())
		return tp.Shutdown(ctx)
	}
}

// tracing is whether StartTracing's provider is the global one.
var tracing atomic.Bool

// off is the tracer while tracing is off: its spans only carry the context they are started in.
var off = noop.NewTracerProvider().Tracer("")

// Tracer is the tracer of the Grantline package named pkg ("pkg/consumer"), from the global
// provider. Ask for it where a span starts rather than keeping it: StartTracing and its stop replace
// the provider, and a tracer kept from an earlier one would go on using it.
// While tracing is off it is a no-op tracer, without even a look-up of the global provider.
func Tracer(pkg string) trace.Tracer {
	if !tracing.Load() {
		return off
	}
	return otel.Tracer("github.com/grantline/grantline/" + pkg)
}
