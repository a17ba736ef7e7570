// Package natsembed runs nats-server with JetStream inside the process: one node for `grantline dev`
// and tests, or a cluster of nodes on 127.0.0.1 for failover tests. Every node fsyncs each write
// (sync_interval: always) unless told otherwise, so development and tests exercise the durable path
// production runs.
package natsembed

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Options configures one embedded node.
type Options struct {
	// Dir holds the JetStream store; it persists across restarts with the same Dir.
	Dir string
	// Host and Port for clients; Port -1 picks a free port, 0 means no TCP listener (in-process only).
	Host string
	Port int
	// HTTPPort serves the monitoring endpoints (/varz, /healthz); 0 disables them.
	HTTPPort int
	// Name is the server name, required for clustering; defaults to "grantline".
	Name string
	// LazySync turns off fsync on every write. Only benchmarks that measure the gap use it.
	LazySync bool
	// Logs sends the server's own log lines to stderr.
	Logs bool
	// Users, when set, are the only clients the server accepts, each authenticating with its NKey and
	// held to its permissions (pkg/brokeraccess renders them); without them anyone may do anything.
	Users []*server.NkeyUser

	clusterName string
	clusterPort int
	routes      []*url.URL
}

const readyTimeout = 30 * time.Second

// Start starts a node and waits until it accepts connections.
func Start(opts Options) (*server.Server, error) {
	if opts.Dir == "" {
		return nil, errors.New("natsembed: a store directory is required")
	}
	name := opts.Name
	if name == "" {
		name = "grantline"
	}
	so := &server.Options{
		ServerName: name, JetStream: true, StoreDir: opts.Dir, SyncAlways: !opts.LazySync,
		Host: opts.Host, Port: opts.Port, HTTPHost: opts.Host, HTTPPort: opts.HTTPPort,
		NoSigs: true, NoLog: !opts.Logs, DontListen: opts.Port == 0,
		// Atomic batches and direct gets need headroom beyond the default 1 MB pending limit.
		MaxPending: 64 << 20,
		Nkeys:      opts.Users,
	}
	if so.Host == "" {
		so.Host = "127.0.0.1"
		so.HTTPHost = "127.0.0.1"
	}
	if opts.clusterName != "" {
		so.Cluster = server.ClusterOpts{Name: opts.clusterName, Host: "127.0.0.1", Port: opts.clusterPort}
		so.Routes = opts.routes
	}
	ns, err := server.NewServer(so)
	if err != nil {
		return nil, fmt.Errorf("configure nats-server: %w", err)
	}
	if opts.Logs {
		ns.ConfigureLogger()
	}
	go ns.Start()
	if !ns.ReadyForConnections(readyTimeout) {
		ns.Shutdown()
		return nil, fmt.Errorf("nats-server %s not ready within %s", name, readyTimeout)
	}
	return ns, nil
}

// Cluster is a JetStream cluster of nodes on 127.0.0.1, each with its own store under a base directory.
type Cluster struct {
	Nodes   []*server.Server
	options []Options
}

// StartCluster starts size nodes that route to each other and waits until JetStream has a meta leader.
func StartCluster(baseDir string, size int) (*Cluster, error) {
	ports, err := freePorts(size)
	if err != nil {
		return nil, err
	}
	var routes []*url.URL
	for _, p := range ports {
		routes = append(routes, &url.URL{Scheme: "nats", Host: fmt.Sprintf("127.0.0.1:%d", p)})
	}
	c := &Cluster{}
	for i := range size {
		name := fmt.Sprintf("n%d", i+1)
		c.options = append(c.options, Options{
			Dir: filepath.Join(baseDir, name), Host: "127.0.0.1", Port: -1, Name: name,
			clusterName: "grantline", clusterPort: ports[i], routes: routes,
		})
	}
	for i := range size {
		ns, err := Start(c.options[i])
		if err != nil {
			c.Shutdown()
			return nil, err
		}
		c.Nodes = append(c.Nodes, ns)
	}
	if err := c.waitFormed(size, readyTimeout); err != nil {
		c.Shutdown()
		return nil, err
	}
	return c, nil
}

// waitFormed waits until the meta leader sees all size nodes online with JetStream. A leader is elected
// before every peer has reported in, and placing a replicated stream then fails with "no suitable
// peers for placement".
func (c *Cluster) waitFormed(size int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		for _, ns := range c.Nodes {
			if ns != nil && ns.Running() && ns.JetStreamIsLeader() && len(ns.JetStreamClusterPeers()) == size {
				return nil
			}
		}
		time.Sleep(25 * time.Millisecond)
	}
	return fmt.Errorf("the JetStream cluster did not form with %d peers within %s", size, timeout)
}

// ClientURLs returns the client URLs of the running nodes, comma-separated, for nats.Connect.
func (c *Cluster) ClientURLs() string {
	var urls []string
	for _, ns := range c.Nodes {
		if ns != nil && ns.Running() {
			urls = append(urls, ns.ClientURL())
		}
	}
	return strings.Join(urls, ",")
}

// WaitForMetaLeader waits until one running node is the JetStream meta leader.
func (c *Cluster) WaitForMetaLeader(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		for _, ns := range c.Nodes {
			if ns != nil && ns.Running() && ns.JetStreamIsLeader() {
				return nil
			}
		}
		time.Sleep(25 * time.Millisecond)
	}
	return fmt.Errorf("no JetStream meta leader within %s", timeout)
}

// Node returns the running node named name, or nil.
func (c *Cluster) Node(name string) *server.Server {
	for _, ns := range c.Nodes {
		if ns != nil && ns.Name() == name {
			return ns
		}
	}
	return nil
}

// Stop shuts node name down cleanly and waits for it; Restart brings it back with the same store.
func (c *Cluster) Stop(name string) {
	for i, ns := range c.Nodes {
		if ns != nil && ns.Name() == name {
			ns.Shutdown()
			ns.WaitForShutdown()
			c.Nodes[i] = nil
		}
	}
}

// Restart starts a stopped node again with its original store, name and route port.
func (c *Cluster) Restart(name string) error {
	for i, o := range c.options {
		if o.Name == name && c.Nodes[i] == nil {
			ns, err := Start(o)
			if err != nil {
				return err
			}
			c.Nodes[i] = ns
			return nil
		}
	}
	return fmt.Errorf("no stopped node %q", name)
}

// Replace stops node name, deletes its store and starts it again with the same name and route port:
// a node whose disk was replaced (docs/operations.md, "Replacing a NATS node").
func (c *Cluster) Replace(name string) error {
	c.Stop(name)
	for _, o := range c.options {
		if o.Name == name {
			if err := os.RemoveAll(o.Dir); err != nil {
				return fmt.Errorf("replace %s: %w", name, err)
			}
			return c.Restart(name)
		}
	}
	return fmt.Errorf("no node %q", name)
}

// Shutdown stops every node and waits for each.
func (c *Cluster) Shutdown() {
	for i, ns := range c.Nodes {
		if ns != nil {
			ns.Shutdown()
			ns.WaitForShutdown()
			c.Nodes[i] = nil
		}
	}
}

// freePorts reserves n distinct loopback ports by listening on them, then releases them for the routes.
func freePorts(n int) ([]int, error) {
	var ports []int
	var listeners []net.Listener
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("reserve a route port: %w", err)
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
