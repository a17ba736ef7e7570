// Package cluster runs a whole Grantline deployment on containers for the end-to-end tests: the
// images `make images` builds (nothing is pulled), started with testcontainers-go on the host network.
//
// A deployment is a three-node NATS JetStream cluster (fsync on every write, R3 streams), the six
// services (fulfilment at two replicas sharing one durable consumer), PostgreSQL on the host (a private
// cluster from the installed binaries: the services' database and the connector's target database),
// and the dev OIDC issuer, served from the test process; the notifier joins when a test starts it
// (StartNotifier). The harness exposes what a black-box test needs: each service's URL, tokens for
// the demo people, the operator's NATS connection, a request's verified events, the target's roles,
// the command line, and fault injection on any container.
//
// Every wait has a deadline, and nothing outlives the run: Close removes what Start made, and a
// watchdog process removes the containers and files of a run whose process died (Ctrl-C, a test
// timeout), since the testcontainers reaper cannot run where no image can be pulled.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/testcontainers/testcontainers-go"

	"github.com/grantline/grantline/pkg/brokeraccess"
	"github.com/grantline/grantline/pkg/events"
)

// readyTimeout bounds the start of one container; formTimeout the forming of the NATS cluster and the
// provisioning of its streams.
const (
	readyTimeout = 90 * time.Second
	formTimeout  = 90 * time.Second
	closeTimeout = 2 * time.Minute
)

// Options configures Start.
type Options struct {
	// Examples is the directory holding catalogue.yaml, directory.yaml, integrations.yaml and
	// policies/; it is mounted read-only into the services.
	Examples string
	// ImageTag is the tag of the grantline/* images (make images IMAGE_TAG=...; default dev).
	ImageTag string
	// Logf reports progress; starting takes a while.
	Logf func(format string, args ...any)
}

// Cluster is a running deployment.
type Cluster struct {
	opts     Options
	examples string
	runID    string
	work     string
	guard    *watchdog
	docker   *testcontainers.DockerClient
	secrets  *secrets
	db       *database
	id       *identity
	nodes    []natsNode
	// members are the containers in start order; services the HTTP URL of each service container.
	members  []*member
	services map[string]string
	nc       *nats.Conn
	js       jetstream.JetStream
	cliRuns  atomic.Int64
}

// Services are the service containers in start order. Fulfilment runs at two replicas.
var Services = []string{"intake", "policy", "approval", "fulfilment-1", "fulfilment-2", "revoker", "query"}

// Start brings a deployment up and returns once every container is ready. On error everything it
// started is removed again.
func Start(ctx context.Context, opts Options) (_ *Cluster, err error) {
	if opts.ImageTag == "" {
		opts.ImageTag = "dev"
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	examples, err := filepath.Abs(opts.Examples)
	if err != nil {
		return nil, err
	}
	if os.Geteuid() != 0 {
		// The secrets are the images' user's (mode 0600), and the test process reads some of them.
		return nil, errors.New("the end-to-end suite runs as root, as CI does: it hands files to the images' user (uid 65532)")
	}
	c := &Cluster{opts: opts, examples: examples, runID: "grantline-e2e-" + strconv.FormatInt(time.Now().UnixNano(), 36),
		services: map[string]string{}}
	// The containers see only what is bind-mounted, whatever the modes of the directories above it.
	if c.work, err = os.MkdirTemp("", c.runID+"-"); err != nil {
		return nil, err
	}
	if c.guard, err = startWatchdog(c.runID, c.work); err != nil {
		return nil, errors.Join(err, os.RemoveAll(c.work))
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, c.Close(context.WithoutCancel(ctx)))
		}
	}()
	if c.docker, err = testcontainers.NewDockerClientWithOpts(ctx); err != nil {
		return nil, fmt.Errorf("docker: %w", err)
	}
	c.logf("run %s, work directory %s", c.runID, c.work)
	c.logf("making the secrets (grantline deploy secrets)")
	if c.secrets, err = c.makeSecrets(ctx, filepath.Join(c.work, "secrets")); err != nil {
		return nil, err
	}
	c.logf("starting PostgreSQL on the host")
	if c.db, err = startDatabase(ctx); err != nil {
		return nil, err
	}
	if c.id, err = startIdentity(c.work, examples); err != nil {
		return nil, err
	}
	if err := c.startNATS(ctx); err != nil {
		return nil, err
	}
	for _, name := range Services {
		if err := c.startService(ctx, name, nil); err != nil {
			return nil, err
		}
	}
	c.logf("all %d containers ready", len(c.members))
	return c, nil
}

func (c *Cluster) logf(format string, args ...any) { c.opts.Logf(format, args...) }

func (c *Cluster) image(name string) string { return "grantline/" + name + ":" + c.opts.ImageTag }

func (c *Cluster) natsURLs() string {
	var urls []string
	for _, n := range c.nodes {
		urls = append(urls, n.clientURL())
	}
	return strings.Join(urls, ",")
}

func (c *Cluster) monitorURLs() string {
	var urls []string
	for _, n := range c.nodes {
		urls = append(urls, n.monitorURL())
	}
	return strings.Join(urls, ",")
}

// startNATS starts the three nodes, waits for the JetStream cluster to form, has the operator
// provision the streams at three replicas and the integrations' outcomes consumers (grantline streams
// provision) and connects as the operator.
func (c *Cluster) startNATS(ctx context.Context) error {
	authConf, err := os.ReadFile(c.secrets.authConf())
	if err != nil {
		return err
	}
	if c.nodes, err = newNATSNodes(c.work, authConf); err != nil {
		return err
	}
	for _, n := range c.nodes {
		c.logf("starting %s (client %d, cluster %d, monitor %d)", n.name, n.clientPort, n.clusterPort, n.monitorPort)
		ctr, err := c.run(ctx, n.spec(c.image("nats")))
		if err != nil {
			return err
		}
		// /healthz answers 200 once the node's JetStream is current with the meta leader and its streams
		// and consumers: after a restart, not before it has caught up.
		c.members = append(c.members, &member{spec: n.spec(c.image("nats")), ctr: ctr, health: n.monitorURL() + "/healthz"})
	}
	for _, m := range c.members {
		if err := c.waitHealthy(ctx, m, readyTimeout); err != nil {
			return err
		}
	}
	formCtx, cancel := context.WithTimeout(ctx, formTimeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for !slices.ContainsFunc(c.nodes, func(n natsNode) bool { return formed(formCtx, n) }) {
		select {
		case <-formCtx.Done():
			return fmt.Errorf("the JetStream cluster did not form within %s", formTimeout)
		case <-tick.C:
		}
	}
	c.logf("JetStream cluster formed; provisioning the streams (R%d)", replicas)
	// An evidence stream of 1 GiB rather than the default 8: three stores share this machine's disk.
	code, out, err := c.cliAs(formCtx, brokeraccess.Operator, "streams", "provision",
		"--replicas", strconv.Itoa(replicas), "--events-max-bytes", strconv.Itoa(1<<30), "--integrations", "/examples/integrations.yaml")
	if err == nil && code != 0 {
		err = fmt.Errorf("exit code %d", code)
	}
	if err != nil {
		return fmt.Errorf("grantline streams provision: %w:\n%s", err, out)
	}
	if c.nc, err = c.ConnectAs(brokeraccess.Operator); err != nil {
		return err
	}
	c.js, err = jetstream.New(c.nc)
	return err
}

// serviceEnv is the environment of service container name listening on port: what each service's
// Config documents, pointing at the cluster, the host's PostgreSQL, the issuer and the mounted files.
func (c *Cluster) serviceEnv(name string, port int) map[string]string {
	env := map[string]string{
		"GRANTLINE_NATS_URL": c.natsURLs(), "GRANTLINE_NATS_MONITOR_URLS": c.monitorURLs(),
		"GRANTLINE_HTTP_ADDR": fmt.Sprintf("127.0.0.1:%d", port), "GRANTLINE_TRUST_FILE": "/secrets/trust.json",
		"GRANTLINE_NATS_NKEY_FILE": "/secrets/nats.nk",
	}
	for k, v := range c.id.env() {
		env[k] = v
	}
	svc := serviceOf(name)
	if signs(svc) {
		env[events.EnvSigningKeyFile] = "/secrets/signing.key"
	}
	env["GRANTLINE_CATALOGUE"] = "/examples/catalogue.yaml"
	bucketReplicas := strconv.Itoa(replicas)
	switch svc {
	case "intake":
		env["GRANTLINE_INTEGRATIONS"] = "/examples/integrations.yaml"
		env["GRANTLINE_REPLICAS"] = bucketReplicas
		// The fault suite's load is one person submitting four requests a second for minutes; the
		// per-requester limit stays on, at a rate above that load (its own tests are in intake).
		env["GRANTLINE_SUBMIT_EVERY"] = "100ms"
	case "policy":
		env["GRANTLINE_POLICY_DIR"] = "/examples/policies"
		env["GRANTLINE_POLICY_STATE_REPLICAS"] = bucketReplicas
	case "approval", "query":
		env["GRANTLINE_DATABASE_URL"] = c.db.servicesDB
	case "fulfilment", "revoker":
		env["GRANTLINE_PG_TARGET_URL"] = c.db.targetDB
		env["GRANTLINE_PG_ROLES"] = pgRolesEnv()
		env["GRANTLINE_CREDENTIAL_KEY"] = c.secrets.credentialKey
		env["GRANTLINE_REPLICAS"] = bucketReplicas
	}
	return env
}

// signs reports whether service svc signs events, and so is given its signing key.
func signs(svc string) bool { return svc != "query" && svc != "notifier" }

// serviceOf is the service a container runs: fulfilment-2 runs fulfilment.
func serviceOf(name string) string {
	svc, _, _ := strings.Cut(name, "-")
	return svc
}

// startService starts service container name, with extra variables besides serviceEnv's, and waits
// for its /readyz. One at a time: the replicas of a service create its key-value buckets, and a
// failure is easier to read when it is the last one started.
func (c *Cluster) startService(ctx context.Context, name string, extra map[string]string) error {
	ports, err := freePorts(1)
	if err != nil {
		return err
	}
	svc := serviceOf(name)
	binds := []string{c.examples + ":/examples:ro", c.secrets.trustFile() + ":/secrets/trust.json:ro",
		c.secrets.natsKey(brokeraccess.User(svc)) + ":/secrets/nats.nk:ro"}
	if signs(svc) {
		binds = append(binds, c.secrets.signingKey(events.Service(svc))+":/secrets/signing.key:ro")
	}
	env := c.serviceEnv(name, ports[0])
	maps.Copy(env, extra)
	s := spec{name: name, image: c.image(svc), env: env, binds: binds}
	c.logf("starting %s on port %d", name, ports[0])
	ctr, err := c.run(ctx, s)
	if err != nil {
		return err
	}
	url := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	m := &member{spec: s, ctr: ctr, health: url + "/readyz"}
	c.members = append(c.members, m)
	c.services[name] = url
	return c.waitHealthy(ctx, m, readyTimeout)
}

// Reconfigure replaces service container name with a new one whose environment has extra besides
// the usual variables (nil: only those), and waits until it is ready. The new container listens on
// another port: read URL(name) again.
func (c *Cluster) Reconfigure(ctx context.Context, name string, extra map[string]string) error {
	m, err := c.member(name)
	if err != nil {
		return err
	}
	if err := m.ctr.Terminate(ctx, testcontainers.StopTimeout(10*time.Second)); err != nil {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	c.members = slices.DeleteFunc(c.members, func(x *member) bool { return x == m })
	return c.startService(ctx, name, extra)
}

// URL is the HTTP origin of service container name (intake, approval, fulfilment-1, ...).
func (c *Cluster) URL(name string) string { return c.services[name] }

// NATSURLs are the cluster's client URLs, comma-separated.
func (c *Cluster) NATSURLs() string { return c.natsURLs() }

// NATSUsers are the deployment's NATS users, as grantline deploy secrets made them (each service, the
// read side, the console, the checkpointer, the auditor, the operator and each integration), with the
// file holding each one's NKey seed.
func (c *Cluster) NATSUsers() (map[brokeraccess.User]string, error) {
	seeds, err := filepath.Glob(c.secrets.natsKey("*"))
	if err != nil {
		return nil, err
	}
	users := map[brokeraccess.User]string{}
	for _, seed := range seeds {
		users[brokeraccess.User(strings.TrimSuffix(filepath.Base(seed), ".nk"))] = seed
	}
	return users, nil
}

// ConnectAs opens a new connection to the cluster as NATS user u, held to u's permissions; the caller
// closes it.
func (c *Cluster) ConnectAs(u brokeraccess.User) (*nats.Conn, error) {
	return connectAs(c.natsURLs(), u, c.secrets.natsKey(u))
}

// JetStream is the operator's JetStream context on the cluster.
func (c *Cluster) JetStream() jetstream.JetStream { return c.js }

// NATS is the operator's connection to the cluster.
func (c *Cluster) NATS() *nats.Conn { return c.nc }

// DumpLogs writes every container's log to dir, one file per container, and returns the paths.
func (c *Cluster) DumpLogs(ctx context.Context, dir string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var paths []string
	var errs []error
	for _, m := range c.members {
		out, err := containerLogs(ctx, m.ctr)
		if err != nil {
			errs = append(errs, fmt.Errorf("log of %s: %w", m.name, err))
			continue
		}
		path := filepath.Join(dir, m.name+".log")
		if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
			errs = append(errs, err)
			continue
		}
		paths = append(paths, path)
	}
	return paths, errors.Join(errs...)
}

// Close removes the deployment: the containers (services first, then the NATS nodes), the operator's
// connection, the issuer, PostgreSQL and the work directory. It is bounded by closeTimeout and always
// finishes with the watchdog's sweep, which removes whatever could not be removed in an orderly way.
func (c *Cluster) Close(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), closeTimeout)
	defer cancel()
	var errs []error
	if c.nc != nil {
		c.nc.Close()
	}
	for _, m := range slices.Backward(c.members) {
		stop := 10 * time.Second
		if err := m.ctr.Terminate(ctx, testcontainers.StopTimeout(stop)); err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", m.name, err))
		}
	}
	if c.docker != nil {
		errs = append(errs, c.docker.Close())
	}
	if c.id != nil {
		errs = append(errs, c.id.close(ctx))
	}
	if c.db != nil {
		errs = append(errs, c.db.close(ctx))
	}
	errs = append(errs, os.RemoveAll(c.work), c.guard.sweep())
	return errors.Join(errs...)
}

// freePorts asks the kernel for n distinct unused loopback ports. They are released before the
// containers bind them, which is safe enough on a machine that runs nothing else on random ports.
func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("pick a free port: %w", err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
