package eventstore

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/trace"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/otlptest"
	"github.com/grantline/grantline/pkg/telemetry"
)

// TestAppendIsASpanTheEventNames: with tracing on, an append is a span below the caller's, and the
// event's traceparent names that span, so the reactions to the event are its children.
func TestAppendIsASpanTheEventNames(t *testing.T) {
	w, _ := singleNode(t)
	receiver := otlptest.Tracing(t)
	traceID, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	spanID, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: traceID, SpanID: spanID, TraceFlags: trace.FlagsSampled, Remote: true}))
	id := events.NewID()
	l, err := w.stores[events.Intake].Update(ctx, id, func(*events.Request) ([]events.Draft, error) {
		return []events.Draft{{Payload: submitted("alice"), Actor: "alice"}}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	receiver.Stop(t)
	spans := receiver.Trace(traceID.String())
	if len(spans) != 1 {
		t.Fatalf("spans of the trace: %+v, want the append alone", spans)
	}
	s := spans[0]
	if s.Name != "append submitted" || s.ParentID != spanID.String() || s.Attributes[telemetry.KeyRequestID] != id ||
		s.Attributes["grantline.service"] != string(events.Intake) {
		t.Errorf("span %+v; want append submitted of %s by intake, below the caller's span", s, id)
	}
	if want := "00-" + traceID.String() + "-" + s.SpanID + "-01"; l.Events[0].TraceParent != want {
		t.Errorf("event traceparent %q, want the append's span %q", l.Events[0].TraceParent, want)
	}
}
