package cluster

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"
)

// startTimeout bounds bringing a deployment up.
const startTimeout = 10 * time.Minute

// RunTests is a test package's TestMain: it starts a deployment (examples is the examples directory,
// relative to the package) into *deployment, runs the package's tests against it, keeps every
// container's log after a failure, and removes the deployment. name prefixes its progress lines. It
// returns the exit code. A test that panics or overruns -timeout ends the process before this returns;
// the watchdog removes the deployment then.
func RunTests(m *testing.M, name, examples string, deployment **Cluster) int {
	// The testcontainers reaper (Ryuk) needs an image that cannot be pulled here; the harness removes
	// its own containers instead. `make e2e` sets this too.
	if os.Getenv("TESTCONTAINERS_RYUK_DISABLED") == "" {
		os.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
	}
	began := time.Now()
	progress := func(format string, args ...any) {
		fmt.Printf("%s %6.1fs  %s\n", name, time.Since(began).Seconds(), fmt.Sprintf(format, args...))
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	c, err := Start(ctx, Options{Examples: examples, ImageTag: os.Getenv("IMAGE_TAG"), Logf: progress})
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: the deployment did not start: %v\n", name, err)
		return 1
	}
	*deployment = c
	progress("deployment started")
	code := m.Run()
	if code != 0 {
		c.keepLogs(name)
	}
	progress("removing the deployment")
	if err := c.Close(context.Background()); err != nil {
		fmt.Fprintf(os.Stderr, "%s: removing the deployment: %v\n", name, err)
		code = 1
	}
	progress("done")
	return code
}

// keepLogs saves every container's full log after a failed run, since the containers go with the
// deployment.
func (c *Cluster) keepLogs(name string) {
	dir, err := os.MkdirTemp("", "grantline-"+name+"-logs-")
	if err == nil {
		var paths []string
		paths, err = c.DumpLogs(context.Background(), dir)
		fmt.Printf("%s: the containers' logs are in %s (%d files)\n", name, dir, len(paths))
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: saving the containers' logs: %v\n", name, err)
	}
}
