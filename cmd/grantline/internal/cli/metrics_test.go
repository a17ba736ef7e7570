package cli

import (
	"io"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/grantline/grantline/pkg/poll"
)

// afterFailures are the metrics the alerting rules and the dashboard read that a service exports only
// once something failed (a redelivery, a connector error, a webhook breaker's transition); the
// observability module's test checks their names against the code instead.
var afterFailures = []string{"grantline_consumer_redeliveries_total", "grantline_connector_errors_total", "grantline_circuit_state"}

// TestMetricsTheAlertsReadAreExported: after a request is granted and revoked and another waits for
// approval, grantline dev's /metrics serves every metric deploy/observability's rules and dashboard
// read, under the very name they read it by.
func TestMetricsTheAlertsReadAreExported(t *testing.T) {
	env, _, api := startDev(t)
	var read []string
	for _, f := range []string{"alerts.yaml", "grafana-dashboard.json"} {
		b, err := os.ReadFile(repoRoot + "/deploy/observability/" + f)
		if err != nil {
			t.Fatal(err)
		}
		read = append(read, regexp.MustCompile(`grantline_[a-z0-9_]+`).FindAllString(string(b), -1)...)
	}
	slices.Sort(read)
	read = slices.Compact(read)
	if len(read) < 10 {
		t.Fatalf("found only %v in the rules and the dashboard", read)
	}
	for _, args := range [][]string{
		{"--entitlement", "analytics-read", "--duration", "5s", "--justification", "watch expiry happen"},
		{"--entitlement", "payments-admin", "--duration", "1h", "--justification", "waits for its approvers"},
	} {
		if code, out := run(t, append(append([]string{"request", "create", "--as", "alice"}, args...), api...)...); code != 0 {
			t.Fatalf("create: exit %d: %s", code, out)
		}
	}
	var missing []string
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("missing from /metrics: %s", strings.Join(missing, ", "))
		}
	})
	poll.Until(t, 30*time.Second, "every metric the alerts and the dashboard read", func() bool {
		resp, err := http.Get("http://" + env.HTTPAddr() + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		missing = missing[:0]
		for _, name := range read {
			if !slices.Contains(afterFailures, name) && !regexp.MustCompile(`(?m)^`+name+`[{ ]`).Match(body) {
				missing = append(missing, name)
			}
		}
		return len(missing) == 0
	})
}
