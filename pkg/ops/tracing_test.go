package ops_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/grantline/grantline/pkg/ops"
	"github.com/grantline/grantline/pkg/otlptest"
)

// TestTraceHTTPNamesTheRouteAndContinuesTheCaller: a traced request is one server span named by the
// mux's route, not the path, in the trace of the caller's traceparent, below the caller's span.
func TestTraceHTTPNamesTheRouteAndContinuesTheCaller(t *testing.T) {
	receiver := otlptest.Tracing(t)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/requests/{id}/withdraw", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusAccepted) })
	srv := httptest.NewServer(ops.TraceHTTP(mux))
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
