package ops

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/grantline/grantline/pkg/brokeraccess"
	"github.com/grantline/grantline/pkg/otlptest"
	"github.com/grantline/grantline/pkg/poll"
)

// TestTraceHTTPNamesTheRouteAndContinuesTheCaller: a traced request is one server span named by the
// mux's route, not the path, in the trace of the caller's traceparent, below the caller's span.
func TestTraceHTTPNamesTheRouteAndContinuesTheCaller(t *testing.T) {
	receiver := otlptest.Tracing(t)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/requests/{id}/withdraw", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusAccepted) })
	srv := httptest.NewServer(TraceHTTP(mux))
	t.Cleanup(srv.Close)

	const traceID, callerSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/requests/01JREQ/withdraw", nil)
	req.Header.Set("traceparent", "00-"+traceID+"-"+callerSpan+"-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("answered %d", resp.StatusCode)
	}
	spans := receiver.Stop(t)
	if len(spans) != 1 {
		t.Fatalf("received %d spans, want 1: %+v", len(spans), spans)
	}
	s := spans[0]
	if s.Name != "POST /v1/requests/{id}/withdraw" || s.TraceID != traceID || s.ParentID != callerSpan {
		t.Errorf("span %q in trace %s below %s; want the route, in the caller's trace below its span", s.Name, s.TraceID, s.ParentID)
	}
}

// TestRunTracesWithAnOTLPEndpoint: a service Run with GRANTLINE_OTLP_ENDPOINT set exports a span of
// each HTTP request, as grantline-<name>, the last ones when it stops.
func TestRunTracesWithAnOTLPEndpoint(t *testing.T) {
	receiver := otlptest.Start(t)
	natsPort, monitorPort := freePort(t), freePort(t)
	startNATS(t, natsPort, monitorPort, true, false)
	cfg := base(natsPort, monitorPort, time.Minute)
	cfg.OTLPEndpoint = receiver.URL()
	out := &logs{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, cfg, ReadsAs(brokeraccess.Query), slog.New(slog.NewJSONHandler(out, nil)),
			func(_ context.Context, host Host) (Service, error) { return reader(host) })
	}()
	t.Cleanup(func() { cancel(); <-done })
	var addr string
	poll.Until(t, 30*time.Second, "the service to listen", func() bool {
		_, after, ok := strings.Cut(out.String(), `"msg":"ops server listening","addr":"`)
		addr, _, _ = strings.Cut(after, `"`)
		return ok
	})
	if code, body := status(t, "http://"+addr+"/v1/streams"); code != http.StatusOK {
		t.Fatalf("GET /v1/streams: %d %s", code, body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run after a stop: %v", err)
	}
	done <- nil
	var names []string
	for _, s := range receiver.Spans() {
		if s.Service == "grantline-query" {
			names = append(names, s.Name)
		}
	}
	if !slices.Contains(names, "GET /v1/streams") {
		t.Errorf("spans of grantline-query: %v, want GET /v1/streams", names)
	}
}
