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
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/grantline/grantline/pkg/auth"
	"github.com/grantline/grantline/pkg/brokeraccess"
	"github.com/grantline/grantline/pkg/config"
	"github.com/grantline/grantline/pkg/eventstore"
	"github.com/grantline/grantline/pkg/natsembed"
	"github.com/grantline/grantline/pkg/ops"
	"github.com/grantline/grantline/pkg/pglocal"
	"github.com/grantline/grantline/pkg/telemetry"
	"github.com/grantline/grantline/pkg/topology"
	"github.com/grantline/grantline/services/notifier/mailsink"
)

// Config is the dev environment's configuration, read from the environment by ConfigFromEnv (the
// `grantline dev` flags override it).
type Config struct {
	DataDir string `env:"GRANTLINE_DATA_DIR" envDefault:".grantline" help:"the JetStream store, the dev keys and the private PostgreSQL"`
	// HTTPAddr is the one HTTP origin of every service's API, the dev issuer and the ops endpoints.
	HTTPAddr string `env:"GRANTLINE_HTTP_ADDR" envDefault:"localhost:8080" help:"the one HTTP origin"`
	// NATSPort is the embedded server's client port on 127.0.0.1 (-1: any free port).
	NATSPort int `env:"GRANTLINE_NATS_PORT" envDefault:"4222" help:"client port of the embedded NATS server, -1 for any"`
	// NATSMonitorPort serves /varz and /healthz (0: off; -1: any free port).
	NATSMonitorPort int `env:"GRANTLINE_NATS_MONITOR_PORT" envDefault:"8222" help:"monitoring port of the embedded NATS server, 0 for none"`
	// Examples holds catalogue.yaml, directory.yaml, integrations.yaml and policies/.
	Examples string `env:"GRANTLINE_EXAMPLES" envDefault:"examples" help:"the demo catalogue, directory, integrations and policies"`
	// DatabaseURL is a PostgreSQL server to use; empty starts a private cluster from the installed
	// binaries, with its data under DataDir.
	DatabaseURL string `env:"GRANTLINE_DATABASE_URL" help:"a PostgreSQL database for the services; empty: a private cluster"`
	PprofAddr   string `env:"GRANTLINE_PPROF_ADDR" help:"address of Go's profiling endpoints, off when empty"`
	// Traces turns tracing on: every service's spans, in one trace per request, printed or exported.
	Traces string `env:"GRANTLINE_DEV_TRACES" help:"where the services' spans go: stdout (one JSON object per span), or an OTLP/HTTP receiver's URL such as http://localhost:4318; off when empty"`
	// SubmitBurst is intake's GRANTLINE_SUBMIT_BURST; zero (as in a Config built in code, for tests
	// and benchmarks that submit as one person) turns the per-requester limit off.
	SubmitBurst int `env:"GRANTLINE_SUBMIT_BURST" envDefault:"30" help:"submissions one person may make at once (then one every 2s); 0: no limit"`
}

// ConfigFromEnv reads Config from the process environment, with the defaults above for unset
// variables, and names every malformed one.
func ConfigFromEnv() (Config, error) {
	var c Config
	err := config.Parse(&c, os.Environ())
	return c, err
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
	stopServing  context.CancelFunc
	// served is closed when the services stop; serveErr says why.
	served   chan struct{}
	serveErr error
	issuer   *auth.DevIssuer
	// postgres is the private cluster, when dev started one; dbURL is the services' database.
	postgres       *pglocal.Cluster
	dbURL, dbWhere string
	// mail is the local SMTP server the notifier mails through, listed at GET /dev/mail.
	mail *mailsink.Sink
	// stopTracing exports the last spans and stops tracing; nil when tracing is off.
	stopTracing func(context.Context) error
}

// Start brings the environment up: NATS (refusing a port already in use with a clear message), the
// streams, the keys, the database, and every service on the one HTTP origin, each built by its own
// package's New and run by the same skeleton as its binary (ops.Process.Serve). Close takes it down.
func Start(ctx context.Context, cfg Config, logger *slog.Logger) (_ *Env, err error) {
	log := logger.With("service", "grantline-dev")
	e := &Env{cfg: cfg, served: make(chan struct{}), log: log}
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
	integrations := demo.integrations.Names()
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
	if err := eventstore.ProvisionIntegrations(ctx, e.js, integrations); err != nil {
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

	e.health, err = ops.New(ops.Options{Service: "grantline-dev", Logger: log, PprofAddr: cfg.PprofAddr})
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
	var root http.Handler = mux
	if cfg.Traces != "" {
		if e.stopTracing, err = startTracing(ctx, cfg.Traces); err != nil {
			return nil, err
		}
		root = ops.TraceHTTP(mux)
	}
	e.http, err = ops.Listen(cfg.HTTPAddr, root, log)
	if err != nil {
		return nil, fmt.Errorf("HTTP on %s: %w", cfg.HTTPAddr, err)
	}
	// The issuer's URL names the bound address, so tokens say where their keys are.
	e.issuer, err = auth.OpenDevIssuer(OIDCDir(cfg.DataDir), "http://"+e.http.Addr()+"/dev/oidc", Audience, demo.directory)
	if err != nil {
		return nil, err
	}
	mux.Handle("/dev/oidc/", http.StripPrefix("/dev/oidc", e.issuer.Handler()))

	services, err := e.services(ctx, demo, mux, logger)
	if err != nil {
		return nil, err
	}
	serveCtx, stopServing := context.WithCancel(context.WithoutCancel(ctx))
	e.stopServing = stopServing
	proc := ops.Process{Server: e.http, Mux: mux, Health: e.health, StopTimeout: stopTimeout, Log: log}
	go func() {
		e.serveErr = proc.Serve(serveCtx, services...)
		close(e.served)
	}()
	return e, nil
}

// startTracing sends every service's spans where to says: "stdout" prints them, one JSON object
// each; anything else is an OTLP/HTTP receiver's URL. They are flushed every second, so a person
// watching sees a request's path while it happens.
func startTracing(ctx context.Context, to string) (func(context.Context) error, error) {
	var exp sdktrace.SpanExporter
	var err error
	if to == "stdout" {
		exp, err = telemetry.StdoutExporter(os.Stdout)
	} else {
		exp, err = telemetry.OTLPExporter(ctx, to)
	}
	if err != nil {
		return nil, fmt.Errorf("traces: %w", err)
	}
	return telemetry.StartTracing("grantline-dev", exp, time.Second), nil
}

// stopTimeout bounds the services' stop, as GRANTLINE_SHUTDOWN_TIMEOUT's default does for a binary.
const stopTimeout = 15 * time.Second

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
  Mail      %s  (what the notifier e-mailed, newest first, as JSON; nothing leaves this machine)
  NATS      %s  (JetStream, fsync on every write; monitoring %s)
  Data      %s  (JetStream store and dev signing keys; delete it to start afresh)
  Streams   %s (evidence: no delete, no purge, no expiry), %s, %s, %s
  Keys      one ed25519 key per service in %s; trust file %s
  Users     one NATS user (NKey) per service, the read side, the auditor, the operator and each
            integration in %s; only the operator may change streams
  Services  intake (HTTP API and integration CloudEvents on grantline.intake.<name>.requests)
            policy (OPA, bundle %s)
            approval (reviews, approval windows, emergency post-reviews; inbox in PostgreSQL)
            query (request lists, grants, who had what when; projections in PostgreSQL)
            fulfilment and revoker (PostgreSQL connector on the demo target, manual tasks, expiry timers)
            notifier (tells reviewers and requesters by e-mail, through a local mail sink on %s)
            console (the web console at /, calling the APIs above as the signed-in person)
  Database  %s
  Identity  dev OIDC issuer http://%s/dev/oidc over %s
Try it:
  grantline request create --as alice --entitlement analytics-read --duration 2h --justification "weekly revenue report"
  grantline request show <id> --as alice
  curl %s  (alice's mail: her access was granted)
  TOKEN=$(grantline dev token alice) && curl -H "Authorization: Bearer $TOKEN" http://%s/v1/requests/<id>
Attach the nats CLI as the operator: nats --server %s --nkey %s stream ls
Press Ctrl-C to stop.
`, e.HTTPAddr(), e.ConsoleURL(), e.MailURL(), e.NATSURL(), monitor, e.cfg.DataDir, topology.EventsStream, topology.TimersStream,
		topology.IntakeStream, topology.DLQStream, e.keys.Dir, e.keys.TrustFile, e.natsKeys.Dir, filepath.Join(e.cfg.Examples, "policies"),
		e.mail.Addr(), e.dbWhere, e.HTTPAddr(), filepath.Join(e.cfg.Examples, "directory.yaml"), e.MailURL(), e.HTTPAddr(), e.NATSURL(), e.natsKeys.Seeds[brokeraccess.Operator])
}

// Close stops the services (their consumers drain, the HTTP origin closes, each service releases what
// it opened), then the connections and the NATS server, in reverse order of start, waiting for each.
func (e *Env) Close(ctx context.Context) {
	if e.stopServing != nil {
		e.stopServing()
		select {
		case <-e.served:
		case <-ctx.Done():
		}
	}
	if e.health != nil {
		_ = e.health.Shutdown(ctx)
	}
	if e.stopTracing != nil {
		if err := e.stopTracing(ctx); err != nil {
			e.log.Warn("export the last spans", "error", err.Error())
		}
	}
	if e.mail != nil {
		_ = e.mail.Close()
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

// Run starts the environment, describes it on out, and runs until ctx ends or a service fails.
func Run(ctx context.Context, cfg Config, out io.Writer, log *slog.Logger) error {
	e, err := Start(ctx, cfg, log)
	if err != nil {
		return err
	}
	e.Describe(out)
	select {
	case <-ctx.Done():
	case <-e.served:
		err = fmt.Errorf("the services stopped: %w", e.serveErr)
	}
	log.Info("shutting down")
	closeCtx, cancel := context.WithTimeout(context.Background(), stopTimeout+5*time.Second)
	defer cancel()
	e.Close(closeCtx)
	return err
}
