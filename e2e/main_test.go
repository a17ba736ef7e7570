// Package e2e holds the black-box end-to-end tests of a whole Grantline deployment on containers
// (internal/cluster): people act over the services' HTTP APIs and the command line, an integration over
// NATS, and each scenario checks the request's verified events and what the target database shows.
//
// One deployment serves every test: TestMain starts it (about a minute) and removes it afterwards.
// Run with `make e2e`, which builds the images first.
package e2e

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/grantline/grantline/e2e/internal/cluster"
)

// deployment is the deployment every test runs against.
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
		fmt.Printf("e2e %6.1fs  %s\n", time.Since(began).Seconds(), fmt.Sprintf(format, args...))
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	var err error
	deployment, err = cluster.Start(ctx, cluster.Options{Examples: "../examples", ImageTag: os.Getenv("IMAGE_TAG"), Logf: progress})
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: the deployment did not start: %v\n", err)
		return 1
	}
	progress("deployment started")
	code := m.Run()
	if code != 0 {
		keepLogs()
	}
	progress("removing the deployment")
	if err := deployment.Close(context.Background()); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: removing the deployment: %v\n", err)
		code = 1
	}
	progress("done")
	return code
}

// keepLogs saves every container's full log after a failed run, since the containers go with the
// deployment.
func keepLogs() {
	dir, err := os.MkdirTemp("", "grantline-e2e-logs-")
	if err == nil {
		var paths []string
		paths, err = deployment.DumpLogs(context.Background(), dir)
		fmt.Printf("e2e: the containers' logs are in %s (%d files)\n", dir, len(paths))
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: saving the containers' logs: %v\n", err)
	}
}
