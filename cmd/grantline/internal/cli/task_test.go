package cli

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestTaskListSaysWhichExtensionContinuesTheAccess (issue 16): a revoke task continued by an extension
// is listed with a line telling the fulfiller to keep the access; a plain revoke task gets no such line.
func TestTaskListSaysWhichExtensionContinuesTheAccess(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"tasks":[
			{"id":"01KB0000000000000000000001-revoke","purpose":"revoke","entitlement":"mainframe-operator","subject":"alice",
			 "continued_by":"01KB0000000000000000000002","may_complete":true},
			{"id":"01KB0000000000000000000003-revoke","purpose":"revoke","entitlement":"mainframe-operator","subject":"bob","may_complete":true}]}`))
	}))
	t.Cleanup(srv.Close)
	code, out := run(t, "task", "list", "--server", srv.URL, "--token", "t")
	if code != 0 {
		t.Fatalf("task list: exit %d: %s", code, out)
	}
	if !strings.Contains(out, "01KB0000000000000000000001-revoke: request 01KB0000000000000000000002 extends this grant and continues the access; keep it") {
		t.Fatalf("the continued revoke task does not say to keep the access:\n%s", out)
	}
	if strings.Count(out, "extends this grant") != 1 {
		t.Fatalf("a revoke task without an extension is said to be continued:\n%s", out)
	}
}
