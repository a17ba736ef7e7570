// Package faults runs a Grantline deployment on containers (internal/cluster) through faults: a NATS
// node killed under steady load, a fulfilment replica killed in the middle of grants, the revoker
// frozen across many expiries (faults_test.go); the services' database and the target refusing
// connections (outages_test.go); two of the three NATS nodes down at once (quorum_test.go); intake,
// policy and approval each killed under load (crashes_test.go); the revoker and fulfilment killed
// mid-work with the lag after the kill measured (crash_test.go). Each then checks from the evidence
// stream and the target database that nothing acknowledged was lost, nothing was applied twice and
// every expired grant was revoked. It also probes the broker's separation of duties on every node as
// every NATS user (broker_test.go).
//
// The package has a deployment of its own, started by TestMain and removed afterwards, so its faults
// never reach the scenarios of package e2e. `make e2e` runs the packages one after the other (-p 1):
// two deployments at once would not fit on a two-core machine.
package faults

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/grantline/grantline/e2e/internal/cluster"
)

// deployment is the deployment every test of the package runs against.
var deployment *cluster.Cluster

func TestMain(m *testing.M) { os.Exit(cluster.RunTests(m, "faults", "../../examples", &deployment)) }

// logsOnFailure prints the end of every container's log if t fails.
func logsOnFailure(t *testing.T) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, name := range deployment.Names() {
			out, err := deployment.Logs(context.Background(), name)
			if err != nil {
				t.Logf("log of %s: %v", name, err)
				continue
			}
			lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
			t.Logf("last lines of %s:\n  %s", name, strings.Join(lines[max(0, len(lines)-30):], "\n  "))
		}
	})
}
