package telemetry_test

import (
	"context"
	"testing"
	"time"

	"github.com/grantline/grantline/pkg/otlptest"
	"github.com/grantline/grantline/pkg/telemetry"
)

// TestTracingExportsOverOTLP: once StartTracing runs with the OTLP exporter of a receiver's base URL,
// a span started through telemetry.Tracer reaches the receiver at /v1/traces, as a span of the named
// service; the stop flushes it, and spans after the stop go nowhere.
func TestTracingExportsOverOTLP(t *testing.T) {
	receiver := otlptest.Start(t)
	ctx := context.Background()
	exp, err := telemetry.OTLPExporter(ctx, receiver.URL())
	if err != nil {
		t.Fatal(err)
	}
	// An hour: only the stop's flush can deliver the span within the test.
	stop := telemetry.StartTracing("grantline-test", exp, time.Hour)
	_, span := telemetry.Tracer("pkg/telemetry").Start(ctx, "exported")
	span.End()
	if err := stop(ctx); err != nil {
		t.Fatalf("stop: %v", err)
	}
	_, after := telemetry.Tracer("pkg/telemetry").Start(ctx, "after the stop")
	if after.IsRecording() {
		t.Error("a span after the stop is recorded")
	}
	after.End()

	spans := receiver.Spans()
	if len(spans) != 1 || spans[0].Name != "exported" || spans[0].Service != "grantline-test" {
		t.Fatalf("received %+v, want the span \"exported\" of grantline-test", spans)
	}
	if spans[0].TraceID != span.SpanContext().TraceID().String() {
		t.Errorf("received trace %s, want %s", spans[0].TraceID, span.SpanContext().TraceID())
	}
}

func TestOTLPExporterRefusesWhatIsNotAnHTTPURL(t *testing.T) {
	for _, endpoint := range []string{"otel-collector:4318", "grpc://otel-collector:4317", "http://", "::"} {
		if _, err := telemetry.OTLPExporter(context.Background(), endpoint); err == nil {
			t.Errorf("OTLPExporter(%q) accepted it", endpoint)
		}
	}
}
