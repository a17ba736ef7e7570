package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/grantline/grantline/pkg/brokeraccess"
)

// cliTimeout bounds one run of the command line, from creating its container to reading its output.
const cliTimeout = 2 * time.Minute

// CLI runs the grantline command line (its image, grantline/grantline) once with args, as an auditor
// or reviewer would next to the deployment: on the host network, with GRANTLINE_NATS_URL naming the
// cluster, GRANTLINE_TRUST_FILE the trust file, and the auditor's NATS user (read-only on the
// evidence). It returns the exit code and what the command printed (stdout and stderr). HTTP commands
// need --server (a service's URL) and --token.
func (c *Cluster) CLI(ctx context.Context, args ...string) (code int, output string, err error) {
	return c.cliAs(ctx, brokeraccess.Auditor, args...)
}

// cliAs runs the command line as NATS user u, with the examples (integrations.yaml among them) at /examples.
func (c *Cluster) cliAs(ctx context.Context, u brokeraccess.User, args ...string) (int, string, error) {
	return c.runOnce(ctx, spec{
		name: fmt.Sprintf("cli-%d", c.cliRuns.Add(1)), image: c.image("grantline"), cmd: args,
		env: map[string]string{"GRANTLINE_NATS_URL": c.natsURLs(), "GRANTLINE_TRUST_FILE": "/secrets/trust.json",
			"GRANTLINE_NATS_NKEY_FILE": "/secrets/nats.nk"},
		binds: []string{c.secrets.trustFile() + ":/secrets/trust.json:ro", c.secrets.natsKey(u) + ":/secrets/nats.nk:ro", c.examples + ":/examples:ro"},
	})
}

// runOnce runs s to completion and returns its exit code and output; the container is removed after.
func (c *Cluster) runOnce(ctx context.Context, s spec) (code int, output string, err error) {
	ctx, cancel := context.WithTimeout(ctx, cliTimeout)
	defer cancel()
	ctr, err := c.run(ctx, s)
	if err != nil {
		return 0, "", err
	}
	defer func() { err = errors.Join(err, ctr.Terminate(context.WithoutCancel(ctx))) }()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		st, err := ctr.State(ctx)
		if err != nil {
			return 0, "", fmt.Errorf("%s %v: %w", s.image, s.cmd, err)
		}
		if !st.Running {
			out, err := containerLogs(ctx, ctr)
			return st.ExitCode, out, err
		}
		select {
		case <-ctx.Done():
			out, _ := containerLogs(context.WithoutCancel(ctx), ctr)
			return 0, out, fmt.Errorf("%s %v still running after %s", s.image, s.cmd, cliTimeout)
		case <-tick.C:
		}
	}
}
