// Package devmode runs Grantline on one machine for development and demos: an embedded NATS server
// with JetStream that admits only the users of the permission matrix (pkg/brokeraccess), the streams, a
// signing key and a NATS user per service, and the HTTP origin. Each service connects as its own NATS
// user, so development exercises the separation of duties the broker enforces in production.
package devmode

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/auth"
	"github.com/grantline/grantline/pkg/brokeraccess"
	"github.com/grantline/grantline/pkg/eventstore"
	"github.com/grantline/grantline/pkg/natsembed"
	"github.com/grantline/grantline/pkg/ops"
	"github.com/grantline/grantline/pkg/pglocal"
	"github.com/grantline/grantline/pkg/topology"
	"github.com/grantline/grantline/services/console/consoled"
)

// Config is the dev environment's configuration; every field has an environment variable.
type Config struct {
	// DataDir holds the JetStream store and the dev signing keys (GRANTLINE_DATA_DIR, default .grantline).
	DataDir string
	// HTTPAddr is the one HTTP origin (GRANTLINE_HTTP_ADDR, default localhost:8080).
	HTTPAddr string
	// NATSPort is the embedded server's client port on 127.0.0.1 (GRANTLINE_NATS_PORT, default 4222; -1 any).
	NATSPort int
	// NATSMonitorPort serves /varz and /healthz (GRANTLINE_NATS_MONITOR_PORT, default 8222; 0 off; -1 any).
	NATSMonitorPort int
	// Examples is the directory holding catalogue.yaml, directory.yaml, integrations.yaml and policies/
	// (GRANTLINE_EXAMPLES, default examples).
	Examples string
	// DatabaseURL is a PostgreSQL server to use (GRANTLINE_DATABASE_URL); empty starts a private
	// cluster from the installed binaries, with its data under DataDir.
	DatabaseURL string
}

// ConfigFromEnv reads Config from GRANTLINE_* variables, with the defaults above for unset ones.
func ConfigFromEnv() Config {
	c := Config{DataDir: ".grantline", HTTPAddr: "localhost:8080", NATSPort: 4222, NATSMonitorPort: 8222, Examples: "examples"}
	if v := os.Getenv("GRANTLINE_EXAMPLES"); v != "" {
		c.Examples = v
	}
	c.DatabaseURL = os.Getenv("GRANTLINE_DATABASE_URL")
	if v := os.Getenv("GRANTLINE_DATA_DIR"); v != "" {
		c.DataDir = v
	}
	if v := os.Getenv("GRANTLINE_HTTP_ADDR"); v != "" {
		c.HTTPAddr = v
	}
	if p, err := strconv.Atoi(os.Getenv("GRANTLINE_NATS_PORT")); err == nil {
		c.NATSPort = p
	}
	if p, err := strconv.Atoi(os.Getenv("GRANTLINE_NATS_MONITOR_PORT")); err == nil {
		c.NATSMonitorPort = p
	}
	return c
}

// Env is a running dev environment.
type Env struct {
	cfg  Config
	nats *server.Server
	// conn is the operator's connection: it provisions the streams and checks them for /readyz.
	conn     *nats.Conn
	js       jetstream.JetStream
	keys     *Keys
	natsKeys *NATSKeys
	// serviceConns are the services' own connections, each as its NATS user; violations lists what the
	// broker refused them, which in a correct build is nothing.
	serviceConns []*nats.Conn
	mu           sync.Mutex
	violations   []string
	log          *slog.Logger
	http         *ops.Server
	health       *ops.Handler
	stopHTTP     context.CancelFunc
	// served is closed when the HTTP origin stops; serveErr says why.
	served   chan struct{}
	serveErr error
	issuer   *auth.DevIssuer
	// policyDir and policyRevision say which policy decides.
	policyDir, policyRevision string
	// postgres is the private cluster, when dev started one; db is the services' database.
	postgres *pglocal.Cluster
	db       *pgxpool.Pool
	dbWhere  string
	// targetURL is the demo target the PostgreSQL connector grants on; closers release connectors.
	targetURL string
	closers   []func()
	// console is the web console on the origin's "/" (console.go).
	console *consoled.Console
	// stopWorkers ends the services' consumers; workers waits for them.
	stopWorkers context.CancelFunc
	workers     sync.WaitGroup
	workerErr   chan error
}

// Start brings the environment up: NATS (refusing a port already in use with a clear message), the
// streams, the keys, and the HTTP origin. Close takes it down again.
func Start(ctx context.Context, cfg Config, logger *slog.Logger) (_ *Env, err error) {
	log := logger.With("service", "grantline-dev")
	e := &Env{cfg: cfg, served: make(chan struct{}), workerErr: make(chan error, 8), log: log}
	defer func() {
		if err != nil {
			e.Close(context.Background())
		}
	}()
	// 0755: the private PostgreSQL runs as its own OS user and must reach its directory inside; the
	// secrets (keys/) keep their own 0700 directory.
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	if err := portFree(cfg.NATSPort); err != nil {
		return nil, err
	}
	demo, err := loadDemo(cfg.Examples)
	if err != nil {
		return nil, err
	}
	var integrations []string
	for _, i := range demo.integrations.Integrations {
		integrations = append(integrations, i.Name)
	}
	if e.natsKeys, err = EnsureNATSKeys(filepath.Join(cfg.DataDir, "keys", "nats"), integrations); err != nil {
		return nil, err
	}
	users, err := e.natsKeys.Matrix.NkeyUsers(e.natsKeys.Public)
	if err != nil {
		return nil, err
	}
	e.nats, err = natsembed.Start(natsembed.Options{
		Dir: filepath.Join(cfg.DataDir, "nats"), Host: "127.0.0.1", Port: cfg.NATSPort,
		HTTPPort: cfg.NATSMonitorPort, Name: "grantline-dev", Users: users,
	})
	if err != nil {
		return nil, err
	}
	if e.conn, e.js, err = e.connect(brokeraccess.Operator); err != nil {
		return nil, err
	}
	if err := eventstore.Provision(ctx, e.js, eventstore.DefaultSettings); err != nil {
		return nil, err
	}
	if err := eventstore.CheckDurability(ctx, eventstore.EmbeddedProbe(e.nats)); err != nil {
		return nil, err
	}
	e.keys, err = EnsureKeys(filepath.Join(cfg.DataDir, "keys"))
	if err != nil {
		return nil, err
	}
	if err := e.startDatabase(ctx); err != nil {
		return nil, err
	}

	e.health, err = ops.New(ops.Options{Service: "grantline-dev", Logger: log})
	if err != nil {
		return nil, err
	}
	e.health.SetCheck("nats", func(ctx context.Context) error {
		if !e.conn.IsConnected() {
			return errors.New("not connected")
		}
		return eventstore.Check(ctx, e.js)
	})
	mux := http.NewServeMux()
	for _, p := range []string{"/livez", "/readyz", "/metrics"} {
		mux.Handle("GET "+p, e.health)
	}
	e.http, err = ops.Listen(cfg.HTTPAddr, mux, log)
	if err != nil {
		return nil, fmt.Errorf("HTTP on %s: %w", cfg.HTTPAddr, err)
	}
	// The issuer's URL names the bound address, so tokens say where their keys are.
	e.issuer, err = auth.OpenDevIssuer(OIDCDir(cfg.DataDir), "http://"+e.http.Addr()+"/dev/oidc", Audience, demo.directory)
	if err != nil {
		return nil, err
	}
	mux.Handle("/dev/oidc/", http.StripPrefix("/dev/oidc", e.issuer.Handler()))
	authn, err := auth.NewVerifier(ctx, e.issuer.VerifierConfig())
	if err != nil {
		return nil, err
	}

	workCtx, stopWorkers := context.WithCancel(context.WithoutCancel(ctx))
	e.stopWorkers = stopWorkers
	if err := e.startIntake(ctx, workCtx, demo, authn, mux, logger.With("service", "intake")); err != nil {
		return nil, err
	}
	if err := e.startPolicy(ctx, workCtx, demo, logger.With("service", "policy")); err != nil {
		return nil, err
	}
	if err := e.startApproval(ctx, workCtx, authn, mux, logger.With("service", "approval")); err != nil {
		return nil, err
	}
	if err := e.startQuery(ctx, workCtx, demo, authn, mux, logger.With("service", "query")); err != nil {
		return nil, err
	}
	if err := e.startFulfilmentAndRevoker(ctx, workCtx, demo, authn, mux, logger); err != nil {
		return nil, err
	}
	if err := e.startConsole(ctx, demo, mux, logger.With("service", "console")); err != nil {
		return nil, err
	}

	serveCtx, stopServing := context.WithCancel(context.WithoutCancel(ctx))
	e.stopHTTP = stopServing
	go func() {
		e.serveErr = e.http.Serve(serveCtx)
		close(e.served)
	}()
	return e, nil
}

// connect opens a connection as NATS user u, closed with the environment. What the broker refuses it is
// logged and kept for PermissionViolations: a refusal in dev means the matrix and the code disagree.
func (e *Env) connect(u brokeraccess.User) (*nats.Conn, jetstream.JetStream, error) {
	opts, err := brokeraccess.ClientOptions(u, e.natsKeys.Seeds[u])
	if err != nil {
		return nil, nil, err
	}
	nc, err := nats.Connect(e.nats.ClientURL(), append(opts, nats.Name("grantline-dev-"+string(u)), nats.MaxReconnects(-1),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrPermissionViolation) {
				e.mu.Lock()
				e.violations = append(e.violations, fmt.Sprintf("%s: %v", u, err))
				e.mu.Unlock()
				e.log.Error("the broker refused a service", "nats_user", string(u), "error", err.Error())
			}
		}))...)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to the embedded nats-server as %s: %w", u, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	if u != brokeraccess.Operator {
		e.serviceConns = append(e.serviceConns, nc)
	}
	return nc, js, nil
}

// PermissionViolations lists what the broker refused the services' connections so far.
func (e *Env) PermissionViolations() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.violations)
}

// NATSKeys are the NATS users' keys: connect as one with brokeraccess.ClientOptions.
func (e *Env) NATSKeys() *NATSKeys { return e.natsKeys }

// portFree fails with an actionable message when another process holds the NATS port, instead of the
// server's own bind error deep in its logs.
func portFree(port int) error {
	if port <= 0 {
		return nil
	}
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return fmt.Errorf("port %d is in use (another grantline dev or nats-server?); stop it or set --nats-port/GRANTLINE_NATS_PORT: %w", port, err)
	}
	return l.Close()
}

// HTTPAddr is the bound address of the HTTP origin.
func (e *Env) HTTPAddr() string { return e.http.Addr() }

// NATSURL is the embedded server's client URL.
func (e *Env) NATSURL() string { return e.nats.ClientURL() }

// Keys are the dev signing keys and their trust file.
func (e *Env) Keys() *Keys { return e.keys }

// Describe writes what is running, for the person who just started it.
func (e *Env) Describe(w io.Writer) {
	monitor := "off"
	if e.cfg.NATSMonitorPort != 0 {
		monitor = "http://" + e.nats.MonitorAddr().String() + "/varz"
	}
	fmt.Fprintf(w, `Grantline dev is running.
  HTTP      http://%s  (/livez, /readyz, /metrics)
  Console   %s/  (sign in as any demo person; plain http on loopback, so its cookies are not Secure)
  NATS      %s  (JetStream, fsync on every write; monitoring %s)
  Data      %s  (JetStream store and dev signing keys; delete it to start afresh)
  Streams   %s (evidence: no delete, no purge, no expiry), %s, %s, %s
  Keys      one ed25519 key per service in %s; trust file %s
  Users     one NATS user (NKey) per service, the read side, the auditor, the operator and each
            integration in %s; only the operator may change streams
  Services  intake (HTTP API and integration CloudEvents on grantline.intake.<name>.requests)
            policy (OPA, bundle %s, revision %s)
            approval (reviews, approval windows, emergency post-reviews; inbox in PostgreSQL)
            query (request lists, grants, who had what when; projections in PostgreSQL)
            fulfilment and revoker (PostgreSQL connector on the demo target, manual tasks, expiry timers)
  Database  %s
  Identity  dev OIDC issuer http://%s/dev/oidc over %s
Try it:
  grantline request create --as alice --entitlement analytics-read --duration 2h --justification "weekly revenue report"
  grantline request show <id> --as alice
  TOKEN=$(grantline dev token alice) && curl -H "Authorization: Bearer $TOKEN" http://%s/v1/requests/<id>
Attach the nats CLI as the operator: nats --server %s --nkey %s stream ls
Press Ctrl-C to stop.
`, e.HTTPAddr(), e.ConsoleURL(), e.NATSURL(), monitor, e.cfg.DataDir, topology.EventsStream, topology.TimersStream,
		topology.IntakeStream, topology.DLQStream, e.keys.Dir, e.keys.TrustFile, e.natsKeys.Dir, e.policyDir, e.policyRevision, e.dbWhere, e.HTTPAddr(),
		filepath.Join(e.cfg.Examples, "directory.yaml"), e.HTTPAddr(), e.NATSURL(), e.natsKeys.Seeds[brokeraccess.Operator])
}

// Close stops the HTTP origin, the services, the connection and the NATS server, in reverse order of
// start, waiting for each.
func (e *Env) Close(ctx context.Context) {
	if e.stopWorkers != nil {
		e.stopWorkers()
		e.workers.Wait()
	}
	if e.console != nil {
		e.console.Shutdown()
	}
	if e.stopHTTP != nil {
		e.stopHTTP()
		select {
		case <-e.served:
		case <-ctx.Done():
		}
	}
	if e.health != nil {
		_ = e.health.Shutdown(ctx)
	}
	for _, c := range e.closers {
		c()
	}
	if e.db != nil {
		e.db.Close()
	}
	if e.postgres != nil {
		_ = e.postgres.Stop(ctx)
	}
	for _, nc := range e.serviceConns {
		_ = nc.Drain()
	}
	if e.conn != nil {
		_ = e.conn.Drain()
	}
	if e.nats != nil {
		e.nats.Shutdown()
		e.nats.WaitForShutdown()
	}
}

// Run starts the environment, describes it on out, and runs until ctx ends.
func Run(ctx context.Context, cfg Config, out io.Writer, log *slog.Logger) error {
	e, err := Start(ctx, cfg, log)
	if err != nil {
		return err
	}
	e.Describe(out)
	select {
	case <-ctx.Done():
	case <-e.served:
		err = fmt.Errorf("HTTP origin stopped: %w", e.serveErr)
	case err = <-e.workerErr:
	}
	log.Info("shutting down")
	closeCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	e.Close(closeCtx)
	return err
}
