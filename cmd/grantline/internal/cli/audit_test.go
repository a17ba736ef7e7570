package cli

import (
	"strings"
	"testing"
	"time"

	"github.com/grantline/grantline/pkg/audit"
	"github.com/grantline/grantline/pkg/events"
)

// TestVerifyOutputListsDrift: a clean history that records drift says it verified, then lists each
// drift with the request or the finding it belongs to.
func TestVerifyOutputListsDrift(t *testing.T) {
	request, finding := events.NewID(), events.FindingID("postgres", "role grantline_hotfix")
	at := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	r := &audit.Report{Events: 9, Requests: 1, FirstSeq: 1, LastSeq: 9, Drift: []audit.Drift{
		{Seq: 7, Time: at, RequestID: request, Kind: events.DriftAfterRevocation, Action: events.DriftRevoke, Connector: "postgres",
			TargetRef: "role grantline_x", Present: true},
		{Seq: 9, Time: at, FindingID: finding, Kind: events.DriftUnexplained, Action: events.DriftRecorded, Connector: "postgres",
			TargetRef: "role grantline_hotfix", Present: true},
	}}
	var out strings.Builder
	if err := printReport(&out, r, false); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 5 || !strings.Contains(lines[0], "verified, nothing found") || !strings.Contains(lines[1], "drifted from the evidence 2 time(s)") {
		t.Fatalf("output:\n%s", out.String())
	}
	for i, want := range [][]string{
		{"7", "present_after_revocation", "revoke", request, "postgres: role grantline_x"},
		{"9", "unexplained", "recorded", "finding " + finding, "postgres: role grantline_hotfix"},
	} {
		for _, w := range want {
			if !strings.Contains(lines[3+i], w) {
				t.Errorf("line %q does not say %q", lines[3+i], w)
			}
		}
	}
}
