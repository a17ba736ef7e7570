package bench

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json/v2"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/cmd/grantline/internal/devmode"
	"github.com/grantline/grantline/pkg/auth"
	"github.com/grantline/grantline/pkg/catalogue"
	pgconnector "github.com/grantline/grantline/pkg/connector/postgres"
	"github.com/grantline/grantline/pkg/connector/webhook"
	"github.com/grantline/grantline/pkg/credential"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/eventstore"
	"github.com/grantline/grantline/pkg/ops"
	"github.com/grantline/grantline/pkg/pglocal"
	"github.com/grantline/grantline/pkg/topology"
)

// Services are the service processes the bench runs, in start order.
var Services = []string{"intake", "policy", "approval", "fulfilment", "revoker", "query"}

// NATSServer is the name of the nats-server process in the report and for --profile.
const NATSServer = "nats-server"

const (
	// entitlement is what every benchmark request asks for: the example policy approves it without
	// review for a member of populationGroup.
	entitlement = "analytics-read"
	// targetRole is the PostgreSQL role the postgres connector grants for entitlement.
	targetRole = "analytics_read"
	// integrationName is the integration the bench submits as with --via integration.
	integrationName = "bench"
	audience        = "grantline"
	webhookSecret   = "GRANTLINE_BENCH_WEBHOOK_SECRET"
	// readyTimeout bounds each process's start.
	readyTimeout = 60 * time.Second
)

// system is what the bench runs and measures: nats-server and the services as processes of their own,
// a private PostgreSQL, and, in the bench process, the identity issuer and the webhook target.
type system struct {
	cfg  Config
	work string
	logs string

	nats       *child
	natsURL    string
	monitorURL string
	nc         *nats.Conn
	js         jetstream.JetStream

	pg    *pglocal.Cluster
	dbURL map[string]string
	keys  *devmode.Keys
	cat   *catalogue.Catalogue

	front     *ops.Server
	stopFront context.CancelFunc
	frontDone chan error
	issuer    *auth.DevIssuer
	target    *webhookTarget
	people    *population

	services []*child
	files    struct{ catalogue, integrations, webhooks string }
}

// natsConfig is the bench's nats-server configuration, written in this one place so that per-service
// users (GRANTLINE_NATS_NKEY_FILE) can be added here: JetStream fsyncing every write, its store in
// storeDir, clients and monitoring on loopback only, the pending-bytes headroom natsembed gives atomic
// batches and direct gets, and the server's own profiling port when profPort > 0.
func natsConfig(storeDir string, port, monitorPort, profPort int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "server_name: grantline-bench\nlisten: \"127.0.0.1:%d\"\nhttp: \"127.0.0.1:%d\"\nmax_pending: 64MB\n", port, monitorPort)
	if profPort > 0 {
		fmt.Fprintf(&b, "prof_port: %d\n", profPort)
	}
	fmt.Fprintf(&b, "jetstream {\n  store_dir: %q\n  sync_interval: always\n}\n", storeDir)
	return b.String()
}

func (s *system) startNATS(ctx context.Context) error {
	ports := make([]int, 3)
	for i := range ports {
		p, err := freePort()
		if err != nil {
			return err
		}
		ports[i] = p
	}
	profPort := 0
	if slices.Contains(s.cfg.Profile, NATSServer) {
		profPort = ports[2]
	}
	conf := filepath.Join(s.work, "nats-server.conf")
	if err := os.WriteFile(conf, []byte(natsConfig(filepath.Join(s.work, "nats"), ports[0], ports[1], profPort)), 0o644); err != nil {
		return err
	}
	c, err := startChild(NATSServer, filepath.Join(s.cfg.BinDir, "nats-server"), []string{"-c", conf}, os.Environ(), s.logs)
	if err != nil {
		return fmt.Errorf("%w (build it with `make binaries`)", err)
	}
	s.nats = c
	s.natsURL = fmt.Sprintf("nats://127.0.0.1:%d", ports[0])
	s.monitorURL = fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	if profPort > 0 {
		c.pprofAddr = fmt.Sprintf("127.0.0.1:%d", profPort)
	}
	if err := c.waitReady(ctx, s.monitorURL+"/healthz", readyTimeout); err != nil {
		return err
	}
	if s.nc, err = nats.Connect(s.natsURL, nats.Name("grantline-bench")); err != nil {
		return fmt.Errorf("connect to nats-server: %w", err)
	}
	if s.js, err = jetstream.New(s.nc); err != nil {
		return err
	}
	if err := eventstore.Provision(ctx, s.js, eventstore.DefaultSettings); err != nil {
		return err
	}
	// The same check every service makes at start: a figure measured without fsync would be a lie.
	return eventstore.CheckDurability(ctx, s.durability())
}

func (s *system) durability() eventstore.SyncProbe {
	return eventstore.MonitorProbe(&http.Client{Timeout: 5 * time.Second}, s.monitorURL)
}

// resetEvents replaces the evidence stream with an empty one, so the services start on a stream that
// holds only what they will be measured on. Deleting a stream is an operator's act that DenyDelete and
// DenyPurge (which guard messages) allow; this server is the bench's own and is thrown away.
func (s *system) resetEvents(ctx context.Context) error {
	if err := s.js.DeleteStream(ctx, topology.EventsStream); err != nil {
		return fmt.Errorf("reset %s: %w", topology.EventsStream, err)
	}
	return eventstore.Provision(ctx, s.js, eventstore.DefaultSettings)
}

// startPostgres starts a private cluster and the services' databases: the approval inbox, the read
// side, and the target of the postgres connector.
func (s *system) startPostgres(ctx context.Context) error {
	var err error
	if s.pg, err = pglocal.Start(ctx, pglocal.Options{}); err != nil {
		return err
	}
	s.dbURL = map[string]string{}
	for _, db := range []string{"approval", "query", "target"} {
		if s.dbURL[db], err = s.pg.EnsureDatabase(ctx, db); err != nil {
			return err
		}
	}
	if s.cfg.Connector != pgconnector.Name {
		return nil
	}
	pg, err := pgconnector.Open(ctx, s.dbURL["target"], map[string]string{entitlement: targetRole})
	if err != nil {
		return err
	}
	defer pg.Close()
	return pg.EnsureRoles(ctx)
}

// startFront serves, from the bench process on loopback, the dev identity issuer the services validate
// tokens against, over a directory of the bench's population, and the webhook target that fulfilment
// grants on.
func (s *system) startFront(ctx context.Context) error {
	s.people = newPopulation(s.cfg.People)
	dirFile := filepath.Join(s.work, "directory.yaml")
	if err := s.people.writeDirectory(dirFile); err != nil {
		return err
	}
	dir, err := auth.LoadDirectory(dirFile)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	if s.front, err = ops.Listen("127.0.0.1:0", mux, nil); err != nil {
		return err
	}
	if s.issuer, err = auth.OpenDevIssuer(filepath.Join(s.work, "oidc"), "http://"+s.front.Addr()+"/oidc", audience, dir); err != nil {
		return err
	}
	if err := s.people.mintTokens(s.issuer, 4*time.Hour); err != nil {
		return err
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return err
	}
	s.target = &webhookTarget{secret: secret, granted: map[string]bool{}}
	mux.Handle("/oidc/", http.StripPrefix("/oidc", s.issuer.Handler()))
	mux.Handle("POST /webhook", s.target)
	serveCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	s.stopFront, s.frontDone = stop, make(chan error, 1)
	go func() { s.frontDone <- s.front.Serve(serveCtx) }()
	return nil
}

// webhookTarget is the system the webhook connector grants on: it checks each call's HMAC signature,
// keeps the grants it holds, and answers what it shows, as a real receiver does.
type webhookTarget struct {
	secret  []byte
	calls   atomic.Int64
	mu      sync.Mutex
	granted map[string]bool
}

func (t *webhookTarget) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	t.calls.Add(1)
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if err := webhook.Verify(t.secret, r.Header, body, time.Now(), 5*time.Minute); err != nil {
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	var call webhook.Call
	if err := events.UnmarshalStrict(body, &call); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	t.mu.Lock()
	switch call.Action {
	case webhook.ActionGrant:
		t.granted[call.GrantID] = true
	case webhook.ActionRevoke:
		delete(t.granted, call.GrantID)
	}
	present := t.granted[call.GrantID]
	t.mu.Unlock()
	answer, _ := json.Marshal(events.Observed{Present: present, Detail: map[string]string{"target": "grantline-bench"}})
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(answer)
}

// writeFiles writes the bench's own catalogue (the one entitlement, fulfilled by the chosen connector),
// integrations (one, which may submit for the population) and webhook targets.
func (s *system) writeFiles() error {
	s.files.catalogue = filepath.Join(s.work, "catalogue.yaml")
	s.files.integrations = filepath.Join(s.work, "integrations.yaml")
	s.files.webhooks = filepath.Join(s.work, "webhooks.json")
	cat := fmt.Sprintf(`# The benchmark's catalogue: one entitlement that the example policy approves without review for
# %[3]s, fulfilled by the %[1]s connector.
entitlements:
  - id: %[2]s
    description: Read-only role on the benchmark's analytics system
    system: %[1]s/analytics
    resource: role %[4]s
    risk: low
    connector: %[1]s
    owner_groups: [analytics-owners]
    max_duration: 8h
    min_duration: 5s
    subject_kinds: [human]
`, s.cfg.Connector, entitlement, populationGroup, targetRole)
	integrations := fmt.Sprintf("integrations:\n  - name: %s\n    requesters: [%s]\n    groups: [%s]\n", integrationName,
		strings.Join(s.people.ids, ", "), populationGroup)
	hooks, err := json.Marshal(map[string]any{"targets": []map[string]any{{
		"name": "grantline-bench", "url": "http://" + s.front.Addr() + "/webhook", "secret_env": webhookSecret,
		"entitlements": []string{entitlement},
	}}})
	if err != nil {
		return err
	}
	for path, content := range map[string][]byte{s.files.catalogue: []byte(cat), s.files.integrations: []byte(integrations), s.files.webhooks: hooks} {
		if err := os.WriteFile(path, content, 0o644); err != nil {
			return err
		}
	}
	s.cat, err = catalogue.Load(s.files.catalogue)
	return err
}

// serviceEnv is the environment of service name listening on httpAddr: the machine's environment
// without any GRANTLINE_ variable, then exactly what the bench configures (see each service's Config).
func (s *system) serviceEnv(name, httpAddr, pprofAddr string, credentialKey string) ([]string, error) {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GRANTLINE_") {
			env = append(env, kv)
		}
	}
	policies, err := filepath.Abs(filepath.Join(s.cfg.Examples, "policies"))
	if err != nil {
		return nil, err
	}
	vc := s.issuer.VerifierConfig()
	set := map[string]string{
		"GRANTLINE_NATS_URL": s.natsURL, "GRANTLINE_NATS_MONITOR_URLS": s.monitorURL, "GRANTLINE_HTTP_ADDR": httpAddr,
		"GRANTLINE_TRUST_FILE": s.keys.TrustFile, "GRANTLINE_CATALOGUE": s.files.catalogue,
		"GRANTLINE_OIDC_ISSUER": vc.Issuer, "GRANTLINE_OIDC_AUDIENCE": vc.Audience, "GRANTLINE_OIDC_JWKS_URL": vc.JWKSURL,
	}
	if name != "query" {
		set[events.EnvSigningKeyFile] = filepath.Join(s.keys.Dir, name+".key")
	}
	if pprofAddr != "" {
		set[ops.PprofAddrEnv] = pprofAddr
	}
	switch name {
	case "intake":
		set["GRANTLINE_INTEGRATIONS"] = s.files.integrations
		// The bench measures the pipeline, not the limits a hostile client meets: both off.
		set["GRANTLINE_SUBMIT_BURST"], set["GRANTLINE_INTEGRATION_SUBMIT_BURST"] = "0", "0"
	case "policy":
		set["GRANTLINE_POLICY_DIR"] = policies
	case "approval", "query":
		set["GRANTLINE_DATABASE_URL"] = s.dbURL[name]
	case "fulfilment", "revoker":
		set[credential.KeyEnv] = credentialKey
		if s.cfg.Connector == pgconnector.Name {
			set["GRANTLINE_PG_TARGET_URL"] = s.dbURL["target"]
			set["GRANTLINE_PG_ROLES"] = entitlement + "=" + targetRole
		} else {
			set["GRANTLINE_WEBHOOKS"] = s.files.webhooks
			set[webhookSecret] = base64.StdEncoding.EncodeToString(s.target.secret)
		}
	}
	for k, v := range set {
		env = append(env, k+"="+v)
	}
	return env, nil
}

// startServices starts every service process and waits until each answers /readyz.
func (s *system) startServices(ctx context.Context) error {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return err
	}
	credentialKey := base64.StdEncoding.EncodeToString(key)
	for _, name := range Services {
		c, err := s.startService(name, credentialKey)
		if err != nil {
			return err
		}
		s.services = append(s.services, c)
	}
	for i, c := range s.services {
		err := c.waitReady(ctx, "http://"+c.httpAddr+"/readyz", readyTimeout)
		// A port freePort chose can be taken (by any process's outgoing connection, say) before the
		// service binds it: that start is retried on new ports, a few times.
		for attempt := 1; err != nil && attempt < portAttempts && strings.Contains(c.logTail(), "address already in use"); attempt++ {
			c.stop()
			if c, err = s.startService(c.name, credentialKey); err != nil {
				return err
			}
			s.services[i] = c
			err = c.waitReady(ctx, "http://"+c.httpAddr+"/readyz", readyTimeout)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// portAttempts bounds the starts of one service whose port was taken before it could bind it.
const portAttempts = 3

// startService starts service name on free loopback ports, without waiting for it.
func (s *system) startService(name, credentialKey string) (*child, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	pprofAddr := ""
	if slices.Contains(s.cfg.Profile, name) {
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		pprofAddr = fmt.Sprintf("127.0.0.1:%d", p)
	}
	env, err := s.serviceEnv(name, addr, pprofAddr, credentialKey)
	if err != nil {
		return nil, err
	}
	c, err := startChild(name, s.binary(name), nil, env, s.logs)
	if err != nil {
		return nil, fmt.Errorf("%w (build the services with `make binaries`)", err)
	}
	c.httpAddr, c.pprofAddr = addr, pprofAddr
	return c, nil
}

// swap stops service name and starts binary in its place with the same configuration, and waits
// until it is ready: how --compare measures another build of a service in the same run.
func (s *system) swap(ctx context.Context, name, binary string) error {
	for i, old := range s.services {
		if old.name != name {
			continue
		}
		old.stop()
		c, err := startChild(name, binary, nil, old.env, s.logs)
		if err != nil {
			return err
		}
		c.httpAddr, c.pprofAddr = old.httpAddr, old.pprofAddr
		s.services[i] = c
		return c.waitReady(ctx, "http://"+c.httpAddr+"/readyz", readyTimeout)
	}
	return fmt.Errorf("no service %q to swap", name)
}

// binary is the path of service name's binary in the bin directory.
func (s *system) binary(name string) string { return filepath.Join(s.cfg.BinDir, "grantline-"+name) }

// children are the processes the bench started, in start order.
func (s *system) children() []*child {
	var out []*child
	if s.nats != nil {
		out = append(out, s.nats)
	}
	return append(out, s.services...)
}

// close stops everything, the services first (all at once: they never call each other, and each
// drains its consumers), then the bench's connection, nats-server, the issuer and target and
// PostgreSQL; then it removes the work directory unless asked to keep it.
func (s *system) close() error {
	var wg sync.WaitGroup
	for _, c := range s.services {
		wg.Go(c.stop)
	}
	wg.Wait()
	if s.nc != nil {
		s.nc.Close()
	}
	if s.nats != nil {
		s.nats.stop()
	}
	var errs []error
	if s.stopFront != nil {
		s.stopFront()
		errs = append(errs, <-s.frontDone)
	}
	if s.pg != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		errs = append(errs, s.pg.Stop(ctx))
		cancel()
	}
	if !s.cfg.KeepWorkDir {
		errs = append(errs, os.RemoveAll(s.work))
	}
	return errors.Join(errs...)
}

// service is the running service process called name.
func (s *system) service(name string) *child {
	for _, c := range s.services {
		if c.name == name {
			return c
		}
	}
	return nil
}

// outcomesSubject is where intake answers the bench's integration CloudEvents.
func outcomesSubject() string { return topology.IntegrationOutcomes(integrationName) }
