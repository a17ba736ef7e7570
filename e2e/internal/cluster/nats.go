package cluster

import (
	"context"
	"encoding/json/v2"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/grantline/grantline/pkg/brokeraccess"
)

// natsNode is one nats-server of the three-node JetStream cluster. Each has its own loopback ports,
// since every container shares the host's network.
type natsNode struct {
	name        string // the container: nats-1, nats-2, nats-3
	serverName  string // its server_name: n1, n2, n3
	clientPort  int
	clusterPort int
	monitorPort int
	// confDir is mounted read-only as /etc/nats; dataDir as /data, the JetStream store, which outlives
	// a stopped or killed container so that a restarted node rejoins with its data.
	confDir, dataDir string
}

func (n natsNode) clientURL() string  { return fmt.Sprintf("nats://127.0.0.1:%d", n.clientPort) }
func (n natsNode) monitorURL() string { return fmt.Sprintf("http://127.0.0.1:%d", n.monitorPort) }

// config is the node's nats-server.conf: JetStream fsyncing every write (the durability every service
// checks at start), the pending-bytes headroom that atomic batches and direct gets need (as
// pkg/natsembed gives), routes to all three nodes, and the NATS users with their permissions
// (auth.conf, from grantline deploy secrets, beside it): clients without a user's key are refused.
func (n natsNode) config(routes []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "server_name: %s\nlisten: \"127.0.0.1:%d\"\nhttp: \"127.0.0.1:%d\"\nmax_pending: 64MB\ninclude \"auth.conf\"\n",
		n.serverName, n.clientPort, n.monitorPort)
	b.WriteString("jetstream {\n  store_dir: \"/data\"\n  sync_interval: always\n  max_file_store: 4GB\n  max_memory_store: 256MB\n}\n")
	fmt.Fprintf(&b, "cluster {\n  name: grantline-e2e\n  listen: \"127.0.0.1:%d\"\n  routes: [\n", n.clusterPort)
	for _, r := range routes {
		fmt.Fprintf(&b, "    %q\n", r)
	}
	b.WriteString("  ]\n}\n")
	return b.String()
}

// newNATSNodes lays out three nodes under work: their ports, configuration files (with authConf, the
// users and their permissions) and store directories.
func newNATSNodes(work string, authConf []byte) ([]natsNode, error) {
	ports, err := freePorts(9)
	if err != nil {
		return nil, err
	}
	nodes := make([]natsNode, 3)
	var routes []string
	for i := range nodes {
		nodes[i] = natsNode{
			name: fmt.Sprintf("nats-%d", i+1), serverName: fmt.Sprintf("n%d", i+1),
			clientPort: ports[3*i], clusterPort: ports[3*i+1], monitorPort: ports[3*i+2],
			confDir: filepath.Join(work, "nats", fmt.Sprintf("n%d", i+1), "conf"),
			dataDir: filepath.Join(work, "nats", fmt.Sprintf("n%d", i+1), "data"),
		}
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", nodes[i].clusterPort))
	}
	for _, n := range nodes {
		for _, dir := range []string{n.confDir, n.dataDir} {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return nil, err
			}
		}
		if err := os.Chown(n.dataDir, imageUser, imageUser); err != nil {
			return nil, fmt.Errorf("hand the store of %s to the image user: %w", n.name, err)
		}
		if err := os.WriteFile(filepath.Join(n.confDir, "nats.conf"), []byte(n.config(routes)), 0o644); err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(n.confDir, "auth.conf"), authConf, 0o644); err != nil {
			return nil, err
		}
	}
	return nodes, nil
}

func (n natsNode) spec(image string) spec {
	return spec{
		name: n.name, image: image, cmd: []string{"-c", "/etc/nats/nats.conf"},
		binds: []string{n.confDir + ":/etc/nats:ro", n.dataDir + ":/data"},
	}
}

// jsz is the part of a node's /jsz that says whether the JetStream cluster has formed.
type jsz struct {
	Meta *struct {
		Leader   string `json:"leader"`
		Size     int    `json:"cluster_size"`
		Replicas []struct {
			Name    string `json:"name"`
			Current bool   `json:"current"`
		} `json:"replicas"`
	} `json:"meta_cluster"`
}

// formed reports whether node's view of the JetStream meta group shows a leader and all three peers
// current. A leader is elected before every peer has reported in, and placing an R3 stream then
// fails with "no suitable peers for placement".
func formed(ctx context.Context, node natsNode) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, node.monitorURL()+"/jsz", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var j jsz
	if resp.StatusCode != http.StatusOK || json.UnmarshalRead(resp.Body, &j) != nil || j.Meta == nil {
		return false
	}
	if j.Meta.Leader == "" || j.Meta.Size != 3 || len(j.Meta.Replicas) != 2 {
		return false
	}
	for _, r := range j.Meta.Replicas {
		if !r.Current {
			return false
		}
	}
	return true
}

// replicas is the replica count of every stream and key-value bucket: one per node.
const replicas = 3

// connectAs connects to the cluster at urls as NATS user u, authenticating with its key.
func connectAs(urls string, u brokeraccess.User, seedFile string) (*nats.Conn, error) {
	opts, err := brokeraccess.ClientOptions(u, seedFile)
	if err != nil {
		return nil, err
	}
	nc, err := nats.Connect(urls, append(opts, nats.Name("grantline-e2e-"+string(u)), nats.MaxReconnects(-1), nats.Timeout(5*time.Second))...)
	if err != nil {
		return nil, fmt.Errorf("connect to the NATS cluster as %s: %w", u, err)
	}
	return nc, nil
}
