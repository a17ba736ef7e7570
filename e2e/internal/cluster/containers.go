package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
	tclog "github.com/testcontainers/testcontainers-go/log"
)

// spec is one container of the deployment. Every container shares the host's network: each listens
// on its own loopback port, and the containers, the host's PostgreSQL and the test process all meet
// on 127.0.0.1.
type spec struct {
	name  string // the harness's name for it: nats-1, intake, fulfilment-2, ...
	image string
	cmd   []string
	env   map[string]string
	// binds are host:container[:ro] bind mounts.
	binds []string
}

// member is a running container of the deployment.
type member struct {
	spec
	ctr testcontainers.Container
	// health is the URL that answers 200 once the container is ready: a service's /readyz, a NATS
	// node's /healthz.
	health string
}

// run creates and starts s. The image must exist locally: testcontainers pulls only an image that
// the engine does not have, and nothing can be pulled here.
func (c *Cluster) run(ctx context.Context, s spec) (testcontainers.Container, error) {
	req := testcontainers.ContainerRequest{
		Image: s.image, Name: c.runID + "-" + s.name, Cmd: s.cmd, Env: s.env,
		Labels: map[string]string{runLabel: c.runID},
		HostConfigModifier: func(hc *container.HostConfig) {
			hc.NetworkMode = "host"
			hc.Binds = s.binds
		},
	}
	ctr, err := testcontainers.GenericContainer(ctx, testcontainers.GenericContainerRequest{
		ContainerRequest: req, Started: true, Logger: tclog.NewNoopLogger(),
	})
	if err != nil {
		if ctr != nil {
			err = errors.Join(err, ctr.Terminate(context.WithoutCancel(ctx)))
		}
		return nil, fmt.Errorf("start %s from %s (is it built? make images): %w", s.name, s.image, err)
	}
	return ctr, nil
}

// waitHealthy polls m's health URL until it answers 200, failing early, with the container's log,
// if the container stops.
func (c *Cluster) waitHealthy(ctx context.Context, m *member, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	hc := &http.Client{Timeout: 2 * time.Second}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, m.health, nil)
		resp, err := hc.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if st, serr := m.ctr.State(ctx); serr == nil && !st.Running {
			return fmt.Errorf("%s exited (code %d) before it was ready:\n%s", m.name, st.ExitCode, c.logTail(m, 40))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready at %s within %s:\n%s", m.name, m.health, timeout, c.logTail(m, 40))
		case <-tick.C:
		}
	}
}

// Logs returns everything container name wrote, stdout and stderr interleaved.
func (c *Cluster) Logs(ctx context.Context, name string) (string, error) {
	m, err := c.member(name)
	if err != nil {
		return "", err
	}
	return containerLogs(ctx, m.ctr)
}

func containerLogs(ctx context.Context, ctr testcontainers.Container) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	rc, err := ctr.Logs(ctx)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	return string(b), err
}

// logTail is the last n lines of m's log, for an error message.
func (c *Cluster) logTail(m *member, n int) string {
	out, err := containerLogs(context.Background(), m.ctr)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "  " + strings.Join(lines, "\n  ")
}

// Names are the containers of the deployment in start order: nats-1..3, intake, policy, approval,
// fulfilment-1, fulfilment-2, revoker, query.
func (c *Cluster) Names() []string {
	var names []string
	for _, m := range c.members {
		names = append(names, m.name)
	}
	return names
}

func (c *Cluster) member(name string) (*member, error) {
	for _, m := range c.members {
		if m.name == name {
			return m, nil
		}
	}
	return nil, fmt.Errorf("no container %q (have %s)", name, strings.Join(c.Names(), ", "))
}

// Kill sends SIGKILL to container name: a crash, with no chance to drain or flush.
func (c *Cluster) Kill(ctx context.Context, name string) error {
	m, err := c.member(name)
	if err != nil {
		return err
	}
	_, err = c.docker.ContainerKill(ctx, m.ctr.GetContainerID(), client.ContainerKillOptions{Signal: "KILL"})
	return err
}

// Stop stops container name gracefully (SIGTERM, then SIGKILL after 30 s).
func (c *Cluster) Stop(ctx context.Context, name string) error {
	m, err := c.member(name)
	if err != nil {
		return err
	}
	timeout := 30 * time.Second
	return m.ctr.Stop(ctx, &timeout)
}

// Start starts container name again after Stop or Kill, with the same configuration and, for a NATS
// node, the same store, and waits until it is ready.
func (c *Cluster) Start(ctx context.Context, name string) error {
	m, err := c.member(name)
	if err != nil {
		return err
	}
	if err := m.ctr.Start(ctx); err != nil {
		return err
	}
	return c.waitHealthy(ctx, m, readyTimeout)
}

// Pause freezes every process of container name (cgroup freezer): it holds its connections but
// answers nothing, like a stalled machine.
func (c *Cluster) Pause(ctx context.Context, name string) error {
	m, err := c.member(name)
	if err != nil {
		return err
	}
	_, err = c.docker.ContainerPause(ctx, m.ctr.GetContainerID(), client.ContainerPauseOptions{})
	return err
}

// Unpause resumes container name after Pause.
func (c *Cluster) Unpause(ctx context.Context, name string) error {
	m, err := c.member(name)
	if err != nil {
		return err
	}
	_, err = c.docker.ContainerUnpause(ctx, m.ctr.GetContainerID(), client.ContainerUnpauseOptions{})
	return err
}
