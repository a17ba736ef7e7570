// Package faults runs a Grantline deployment on containers (internal/cluster) through faults: a NATS
// node killed under steady load, a fulfilment replica killed in the middle of grants, the revoker
// frozen across many expiries; then it checks from the evidence stream and the target database that
// nothing acknowledged was lost, nothing was applied twice and every expired grant was revoked. It also
// probes the broker's separation of duties on every node as every NATS user.
//
// The package has a deployment of its own, started by TestMain and removed afterwards, so its faults
// never reach the scenarios of package e2e. `make e2e` runs the packages one after the other (-p 1):
// two deployments at once would not fit on a two-core machine.
package faults

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/grantline/grantline/e2e/internal/cluster"
)

// deployment is the deployment every test of the package runs against.
var deployment *cluster.Cluster

// startTimeout bounds bringing the deployment up.
const startTimeout = 10 * time.Minute

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	// The testcontainers reaper (Ryuk) needs an image that cannot be pulled here; the harness removes
	// its own containers instead. `make e2e` sets this too.
	if os.Getenv("TESTCONTAINERS_RYUK_DISABLED") == "" {
		os.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
	}
	began := time.Now()
	progress := func(format string, args ...any) {
		fmt.Printf("faults %6.1fs  %s\n", time.Since(began).Seconds(), fmt.Sprintf(format, args...))
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	var err error
	deployment, err = cluster.Start(ctx, cluster.Options{Examples: "../../examples", ImageTag: os.Getenv("IMAGE_TAG"), Logf: progress})
	if err != nil {
		fmt.Fprintf(os.Stderr, "faults: the deployment did not start: %v\n", err)
		return 1
	}
	progress("deployment started")
	// A test that panics or overruns -timeout ends the process before this returns; the harness's
	// watchdog removes the deployment then.
	code := m.Run()
	if code != 0 {
		keepLogs()
	}
	progress("removing the deployment")
	if err := deployment.Close(context.Background()); err != nil {
		fmt.Fprintf(os.Stderr, "faults: removing the deployment: %v\n", err)
		code = 1
	}
	progress("done")
	return code
}

// keepLogs saves every container's full log after a failed run, since the containers go with the
// deployment.
func keepLogs() {
	dir, err := os.MkdirTemp("", "grantline-faults-logs-")
	if err == nil {
		var paths []string
		paths, err = deployment.DumpLogs(context.Background(), dir)
		fmt.Printf("faults: the containers' logs are in %s (%d files)\n", dir, len(paths))
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "faults: saving the containers' logs: %v\n", err)
	}
}

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
