package telemetry_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/trace"

	"github.com/grantline/grantline/pkg/telemetry"
)

const (
	testTraceID     = "0af7651916cd43dd8448eb211c80319c"
	testSpanID      = "b7ad6b7169203331"
	testTraceparent = "00-" + testTraceID + "-" + testSpanID + "-01"
)

// sampledContext returns a context carrying a fixed, sampled span context, as
// a service handling a traced request would have.
func sampledContext(t *testing.T) context.Context {
	t.Helper()
	tid, err := trace.TraceIDFromHex(testTraceID)
	if err != nil {
		t.Fatalf("trace id: %v", err)
	}
	sid, err := trace.SpanIDFromHex(testSpanID)
	if err != nil {
		t.Fatalf("span id: %v", err)
	}
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    tid,
		SpanID:     sid,
		TraceFlags: trace.FlagsSampled,
	})
	return trace.ContextWithSpanContext(context.Background(), sc)
}

func TestInjectWritesLowerCaseTraceparent(t *testing.T) {
	telemetry.InstallPropagator()
	h := nats.Header{}

	telemetry.Inject(sampledContext(t), h)

	vals, ok := h["traceparent"]
	if !ok {
		t.Fatalf("header has no exact key %q; got keys %v", "traceparent", telemetry.HeaderCarrier(h).Keys())
	}
	if len(vals) != 1 || vals[0] != testTraceparent {
		t.Fatalf("traceparent = %q, want [%q]", vals, testTraceparent)
	}
	if _, ok := h["Traceparent"]; ok {
		t.Fatalf("header also has canonicalised key Traceparent: %v", h)
	}
}

func TestExtractRoundTrip(t *testing.T) {
	telemetry.InstallPropagator()
	h := nats.Header{}
	telemetry.Inject(sampledContext(t), h)

	ctx := telemetry.Extract(context.Background(), h)

	if got := telemetry.TraceID(ctx); got != testTraceID {
		t.Fatalf("TraceID after extract = %q, want %q", got, testTraceID)
	}
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsRemote() || !sc.IsSampled() || sc.SpanID().String() != testSpanID {
		t.Fatalf("extracted span context = %+v, want remote, sampled, span %s", sc, testSpanID)
	}
}

func TestBaggageRoundTrip(t *testing.T) {
	telemetry.InstallPropagator()
	m, err := baggage.NewMember("tenant", "acme")
	if err != nil {
		t.Fatalf("baggage member: %v", err)
	}
	b, err := baggage.New(m)
	if err != nil {
		t.Fatalf("baggage: %v", err)
	}
	h := nats.Header{}
	telemetry.Inject(baggage.ContextWithBaggage(sampledContext(t), b), h)

	if got := h.Get("baggage"); got != "tenant=acme" {
		t.Fatalf("baggage header = %q, want %q", got, "tenant=acme")
	}
	got := baggage.FromContext(telemetry.Extract(context.Background(), h)).Member("tenant").Value()
	if got != "acme" {
		t.Fatalf("extracted baggage tenant = %q, want %q", got, "acme")
	}
}

// NATS headers are case-sensitive: a capitalised key, as http.Header would
// produce, is a different header and must not be taken for the W3C one.
func TestExtractIgnoresCapitalisedTraceparent(t *testing.T) {
	telemetry.InstallPropagator()
	h := nats.Header{"Traceparent": []string{testTraceparent}}

	ctx := telemetry.Extract(context.Background(), h)

	if got := telemetry.TraceID(ctx); got != "" {
		t.Fatalf("TraceID = %q from a Traceparent header, want \"\" (keys are case-sensitive)", got)
	}
}

func TestNilHeaders(t *testing.T) {
	telemetry.InstallPropagator()
	telemetry.Inject(sampledContext(t), nil) // must not panic
	if got := telemetry.TraceID(telemetry.Extract(context.Background(), nil)); got != "" {
		t.Fatalf("TraceID from nil header = %q, want \"\"", got)
	}
}

func TestTraceIDWithoutSpan(t *testing.T) {
	if got := telemetry.TraceID(context.Background()); got != "" {
		t.Fatalf("TraceID(background) = %q, want \"\"", got)
	}
}

func TestHeaderCarrierIsCaseSensitive(t *testing.T) {
	c := telemetry.HeaderCarrier{}
	c.Set("traceparent", "a")
	if got := c.Get("Traceparent"); got != "" {
		t.Fatalf("Get(Traceparent) = %q, want \"\"", got)
	}
	if got := c.Get("traceparent"); got != "a" {
		t.Fatalf("Get(traceparent) = %q, want %q", got, "a")
	}
	if keys := c.Keys(); len(keys) != 1 || keys[0] != "traceparent" {
		t.Fatalf("Keys() = %v, want [traceparent]", keys)
	}
	if vals := c.Values("traceparent"); len(vals) != 1 || vals[0] != "a" {
		t.Fatalf("Values(traceparent) = %v, want [a]", vals)
	}
}

// TestInjectHTTPCarriesTheTraceToACalledService: the headers of an outgoing HTTP request carry the
// caller's traceparent, found however a server spells the header name.
func TestInjectHTTPCarriesTheTraceToACalledService(t *testing.T) {
	telemetry.InstallPropagator()
	h := http.Header{}
	telemetry.InjectHTTP(sampledContext(t), h)
	if got := h.Get("traceparent"); got != testTraceparent {
		t.Fatalf("traceparent %q, want %q", got, testTraceparent)
	}
	h = http.Header{}
	telemetry.InjectHTTP(context.Background(), h)
	if len(h) != 0 {
		t.Errorf("outside a trace the headers gained %v", h)
	}
}
