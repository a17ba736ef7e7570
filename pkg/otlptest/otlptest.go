// Package otlptest is an in-process OTLP/HTTP trace receiver for tests: point a process's exporter at
// its URL and read back the spans it received, decoded from the same protobuf export requests a
// collector receives.
package otlptest

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/grantline/grantline/pkg/telemetry"
)

// Span is one received span, flattened: the ids in hex, as W3C traceparent spells them.
type Span struct {
	TraceID, SpanID, ParentID string
	Name                      string
	// Service is the service.name of the resource that exported it.
	Service string
	// Attributes holds the span's string, boolean and integer attributes as text.
	Attributes map[string]string
	// Failed is true when the span's status is an error.
	Failed bool
}

// Receiver takes OTLP/HTTP protobuf exports at URL()+"/v1/traces" and keeps their spans.
type Receiver struct {
	srv *httptest.Server
	// stop ends the tracing Tracing started; nil for a receiver Start made.
	stop  func() error
	mu    sync.Mutex
	spans []Span
}

// Start serves a receiver on loopback until the test ends. A request it cannot decode fails the test.
func Start(t testing.TB) *Receiver {
	r := &Receiver{}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/traces", func(w http.ResponseWriter, req *http.Request) {
		if err := r.receive(req); err != nil {
			t.Errorf("otlptest: %v", err)
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
		b, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
		_, _ = w.Write(b)
	})
	r.srv = httptest.NewServer(mux)
	t.Cleanup(r.srv.Close)
	return r
}

// Tracing starts a receiver and traces this process into it (telemetry.StartTracing with the OTLP
// exporter) until Stop or the end of the test. Tracing is process-wide: a test that uses it
// must not run in parallel with another that does.
func Tracing(t testing.TB) *Receiver {
	r := Start(t)
	exp, err := telemetry.OTLPExporter(context.Background(), r.URL())
	if err != nil {
		t.Fatal(err)
	}
	stop := telemetry.StartTracing("grantline-test", exp, time.Hour)
	r.stop = sync.OnceValue(func() error { return stop(context.Background()) })
	t.Cleanup(func() { _ = r.stop() })
	return r
}

// Stop ends the tracing Tracing started, exporting every span still buffered, and returns every span
// received; a failed export fails the test.
func (r *Receiver) Stop(t testing.TB) []Span {
	t.Helper()
	if r.stop != nil {
		if err := r.stop(); err != nil {
			t.Fatalf("otlptest: export the last spans: %v", err)
		}
	}
	return r.Spans()
}

// URL is the receiver's base URL, as GRANTLINE_OTLP_ENDPOINT takes it.
func (r *Receiver) URL() string { return r.srv.URL }

// Spans returns a copy of every span received so far, in the order received.
func (r *Receiver) Spans() []Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.spans)
}

// Trace returns the spans received so far of the trace traceID.
func (r *Receiver) Trace(traceID string) []Span {
	var out []Span
	for _, s := range r.Spans() {
		if s.TraceID == traceID {
			out = append(out, s)
		}
	}
	return out
}

func (r *Receiver) receive(req *http.Request) error {
	if ct := req.Header.Get("Content-Type"); ct != "application/x-protobuf" {
		return fmt.Errorf("content type %q, want application/x-protobuf", ct)
	}
	if enc := req.Header.Get("Content-Encoding"); enc != "" {
		return fmt.Errorf("content encoding %q, want none", enc)
	}
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return err
	}
	var export collectortrace.ExportTraceServiceRequest
	if err := proto.Unmarshal(body, &export); err != nil {
		return fmt.Errorf("decode export request: %w", err)
	}
	var got []Span
	for _, rs := range export.GetResourceSpans() {
		service := attributes(rs.GetResource().GetAttributes())["service.name"]
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				got = append(got, Span{
					TraceID: hex.EncodeToString(s.GetTraceId()), SpanID: hex.EncodeToString(s.GetSpanId()),
					ParentID: hex.EncodeToString(s.GetParentSpanId()), Name: s.GetName(), Service: service,
					Attributes: attributes(s.GetAttributes()), Failed: s.GetStatus().GetCode() == tracepb.Status_STATUS_CODE_ERROR,
				})
			}
		}
	}
	r.mu.Lock()
	r.spans = append(r.spans, got...)
	r.mu.Unlock()
	return nil
}

// attributes renders the scalar attributes as text.
func attributes(kvs []*commonpb.KeyValue) map[string]string {
	out := map[string]string{}
	for _, kv := range kvs {
		switch v := kv.GetValue().GetValue().(type) {
		case *commonpb.AnyValue_StringValue:
			out[kv.GetKey()] = v.StringValue
		case *commonpb.AnyValue_BoolValue:
			out[kv.GetKey()] = fmt.Sprint(v.BoolValue)
		case *commonpb.AnyValue_IntValue:
			out[kv.GetKey()] = fmt.Sprint(v.IntValue)
		}
	}
	return out
}
