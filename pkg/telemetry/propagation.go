package telemetry

import (
	"context"
	"net/http"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// HeaderCarrier adapts nats.Header to propagation.TextMapCarrier. Keys are
// used exactly as given, because NATS headers are case-sensitive and the W3C
// keys must stay lower case ("traceparent").
type HeaderCarrier nats.Header

// Compile-time checks: Values lets multi-valued headers (e.g. several
// "baggage" entries) be read in full by propagators that support it.
var (
	_ propagation.TextMapCarrier = HeaderCarrier{}
	_ propagation.ValuesGetter   = HeaderCarrier{}
)

// Get returns the first value stored under exactly key, or "" if there is
// none.
func (c HeaderCarrier) Get(key string) string {
	return nats.Header(c).Get(key)
}

// Set replaces the values stored under exactly key with value. It panics if c
// is nil, like any write to a nil map.
func (c HeaderCarrier) Set(key, value string) {
	nats.Header(c).Set(key, value)
}

// Keys returns the header keys in no particular order.
func (c HeaderCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

// Values returns all values stored under exactly key, or nil.
func (c HeaderCarrier) Values(key string) []string {
	return nats.Header(c).Values(key)
}

// InstallPropagator sets the global OpenTelemetry propagator to W3C Trace
// Context plus W3C Baggage. Call it once at process start, before any
// Inject or Extract; until then those are no-ops. It is idempotent.
func InstallPropagator() {
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(
		propagation.TraceContext{}, propagation.Baggage{},
	))
}

// Inject writes the trace context (and baggage) of ctx into h using the
// global propagator. Nothing is written if ctx carries no valid span
// context, or if h is nil: a nil map cannot be written to, so allocate the
// header first (nats.NewMsg does).
func Inject(ctx context.Context, h nats.Header) {
	if h == nil {
		return
	}
	otel.GetTextMapPropagator().Inject(ctx, HeaderCarrier(h))
}

// InjectHTTP writes the trace context (and baggage) of ctx into the headers of an outgoing HTTP
// request, so the service it calls continues the trace (ops.TraceHTTP reads it there). HTTP header
// names are case-insensitive, so the standard carrier's canonical "Traceparent" is right here.
func InjectHTTP(ctx context.Context, h http.Header) {
	otel.GetTextMapPropagator().Inject(ctx, propagation.HeaderCarrier(h))
}

// Extract returns a copy of ctx carrying the remote span context (and
// baggage) found in h by the global propagator. If h is nil or holds no
// valid trace context, ctx is returned without a remote span context; only
// the exact lower-case keys are read.
func Extract(ctx context.Context, h nats.Header) context.Context {
	return otel.GetTextMapPropagator().Extract(ctx, HeaderCarrier(h))
}

// TraceID returns the hex-encoded trace id of the span context in ctx, local
// or remote, or "" if ctx has no valid span context.
func TraceID(ctx context.Context) string {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.TraceID().IsValid() {
		return ""
	}
	return sc.TraceID().String()
}
