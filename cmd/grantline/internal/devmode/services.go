package devmode

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/auth"
	"github.com/grantline/grantline/pkg/brokeraccess"
	"github.com/grantline/grantline/pkg/catalogue"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/eventstore"
	"github.com/grantline/grantline/pkg/pglocal"
	"github.com/grantline/grantline/services/approval/approvald"
	"github.com/grantline/grantline/services/fulfilment/connector"
	pgconnector "github.com/grantline/grantline/services/fulfilment/connector/postgres"
	"github.com/grantline/grantline/services/fulfilment/credential"
	"github.com/grantline/grantline/services/fulfilment/fulfilmentd"
	"github.com/grantline/grantline/services/intake"
	"github.com/grantline/grantline/services/intake/idempotency"
	"github.com/grantline/grantline/services/intake/intaked"
	"github.com/grantline/grantline/services/policy"
	"github.com/grantline/grantline/services/policy/policyd"
	"github.com/grantline/grantline/services/query/queryd"
	"github.com/grantline/grantline/services/revoker/revokerd"
)

// Audience is the audience of dev tokens.
const Audience = "grantline"

// OIDCDir is where the dev issuer keeps its key and issuer record inside the data directory.
func OIDCDir(dataDir string) string { return filepath.Join(dataDir, "oidc") }

// demo is the example set the dev environment runs on.
type demo struct {
	catalogue    *catalogue.Catalogue
	directory    *auth.Directory
	integrations *intake.Integrations
	policies     string
}

// loadDemo reads the catalogue, directory, integrations and policy bundle from dir, and says where it
// looked when something is missing (`make dev` runs from the repository root).
func loadDemo(dir string) (demo, error) {
	if _, err := os.Stat(dir); err != nil {
		return demo{}, fmt.Errorf("examples directory %q not found (run from the repository root or set GRANTLINE_EXAMPLES): %w", dir, err)
	}
	var d demo
	var err error
	if d.catalogue, err = catalogue.Load(filepath.Join(dir, "catalogue.yaml")); err != nil {
		return demo{}, err
	}
	if d.directory, err = auth.LoadDirectory(filepath.Join(dir, "directory.yaml")); err != nil {
		return demo{}, err
	}
	if d.integrations, err = intake.LoadIntegrations(filepath.Join(dir, "integrations.yaml")); err != nil {
		return demo{}, err
	}
	d.policies = filepath.Join(dir, "policies")
	return d, nil
}

// service connects as svc's own NATS user and opens the event store on that connection, signing with
// svc's dev key.
func (e *Env) service(ctx context.Context, svc events.Service) (jetstream.JetStream, *eventstore.Store, error) {
	_, js, err := e.connect(brokeraccess.User(svc))
	if err != nil {
		return nil, nil, err
	}
	store, err := eventstore.Open(ctx, js, eventstore.Config{Signer: e.keys.Signers[svc], Verifier: e.keys.Verifier,
		Durability: eventstore.EmbeddedProbe(e.nats)})
	return js, store, err
}

// goWork runs a service's consumers until the workers stop; a failure ends the dev run.
func (e *Env) goWork(name string, run func() error) {
	e.workers.Go(func() {
		if err := run(); err != nil {
			e.workerErr <- fmt.Errorf("%s: %w", name, err)
		}
	})
}

func (e *Env) startIntake(ctx, workCtx context.Context, d demo, authn *auth.Verifier, mux *http.ServeMux, log *slog.Logger) error {
	js, store, err := e.service(ctx, events.Intake)
	if err != nil {
		return err
	}
	keys, err := idempotency.Open(ctx, js, 1)
	if err != nil {
		return err
	}
	deps := intaked.Deps{JS: js, Store: store, Catalogue: d.catalogue, Integrations: d.integrations, Auth: authn,
		Idempotency: keys, Now: time.Now, ReaderGroups: []string{"auditors", "security"}}
	deps.API(log).Routes(mux)
	e.goWork("intake", func() error { return deps.ConsumeIntegrations(workCtx, log) })
	return nil
}

func (e *Env) startPolicy(ctx, workCtx context.Context, d demo, log *slog.Logger) error {
	js, store, err := e.service(ctx, events.Policy)
	if err != nil {
		return err
	}
	engine, err := policy.Load(ctx, d.policies)
	if err != nil {
		return err
	}
	e.policyDir, e.policyRevision = d.policies, engine.Revision()
	deps := policyd.Deps{JS: js, Store: store, Catalogue: d.catalogue, Engine: engine, Meter: e.health.MeterProvider()}
	e.goWork("policy", func() error { return policyd.Serve(workCtx, deps, log) })
	return nil
}

// startDatabase connects to GRANTLINE_DATABASE_URL, or else starts a private PostgreSQL cluster from
// the installed binaries with its data in the data directory, and opens the services' database.
func (e *Env) startDatabase(ctx context.Context) error {
	url := e.cfg.DatabaseURL
	e.dbWhere = "GRANTLINE_DATABASE_URL"
	if url == "" {
		cluster, err := pglocal.Start(ctx, pglocal.Options{Dir: filepath.Join(e.cfg.DataDir, "postgres")})
		if err != nil {
			return fmt.Errorf("no GRANTLINE_DATABASE_URL, and a private PostgreSQL could not be started: %w", err)
		}
		e.postgres = cluster
		if url, err = cluster.EnsureDatabase(ctx, "grantline"); err != nil {
			return err
		}
		e.dbWhere = "private PostgreSQL in " + filepath.Join(e.cfg.DataDir, "postgres") + " (" + url + ")"
	}
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return fmt.Errorf("database: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return fmt.Errorf("database: %w", err)
	}
	e.db = pool
	return nil
}

func (e *Env) startApproval(ctx, workCtx context.Context, authn *auth.Verifier, mux *http.ServeMux, log *slog.Logger) error {
	js, store, err := e.service(ctx, events.Approval)
	if err != nil {
		return err
	}
	deps := approvald.Deps{JS: js, Store: store, Auth: authn, DB: e.db, Now: time.Now}
	if err := deps.Migrate(ctx); err != nil {
		return err
	}
	deps.Routes(mux, log)
	e.goWork("approval", func() error { return deps.Consume(workCtx, log) })
	return nil
}

func (e *Env) startQuery(ctx, workCtx context.Context, d demo, authn *auth.Verifier, mux *http.ServeMux, log *slog.Logger) error {
	_, js, err := e.connect(brokeraccess.Query)
	if err != nil {
		return err
	}
	deps := queryd.Deps{JS: js, Verifier: e.keys.Verifier, DB: e.db, Auth: authn, Catalogue: d.catalogue, Now: time.Now}
	if err := deps.Migrate(ctx); err != nil {
		return err
	}
	deps.Routes(mux, log)
	e.goWork("query", func() error { return deps.Consume(workCtx, log) })
	return nil
}

// startFulfilmentAndRevoker wires the demo target (a database of the dev PostgreSQL with the demo
// roles), the credential store, and the fulfilment and revoker services; both use the same connectors,
// since a grant is revoked through the connector that made it.
func (e *Env) startFulfilmentAndRevoker(ctx, workCtx context.Context, d demo, authn *auth.Verifier, mux *http.ServeMux, log *slog.Logger) error {
	targetURL := e.cfg.DatabaseURL
	if e.postgres != nil {
		var err error
		if targetURL, err = e.postgres.EnsureDatabase(ctx, "grantline_target"); err != nil {
			return err
		}
	}
	pg, err := pgconnector.Open(ctx, targetURL, pgconnector.DemoRoles())
	if err != nil {
		return fmt.Errorf("demo target: %w", err)
	}
	e.closers = append(e.closers, pg.Close)
	if err := pg.EnsureRoles(ctx); err != nil {
		return fmt.Errorf("demo target roles: %w", err)
	}
	key, err := credentialKey(filepath.Join(e.cfg.DataDir, "keys", "credential.key"))
	if err != nil {
		return err
	}
	fulfilmentJS, fulfilmentStore, err := e.service(ctx, events.Fulfilment)
	if err != nil {
		return err
	}
	creds, tasks, err := fulfilmentd.OpenState(ctx, fulfilmentJS, key, 1)
	if err != nil {
		return err
	}
	conns := connector.Set{pgconnector.Name: pg}
	revokerJS, revokerStore, err := e.service(ctx, events.Revoker)
	if err != nil {
		return err
	}
	// The revoker discards revoked secrets through its own connection, as deployed: its user may write
	// to the credential bucket but not read it.
	revokerCreds, err := credential.Attach(ctx, revokerJS, key)
	if err != nil {
		return err
	}
	revokerLog := log.With("service", "revoker")
	rev := revokerd.Deps{JS: revokerJS, Store: revokerStore, Catalogue: d.catalogue, Auth: authn, Connectors: conns, Credentials: revokerCreds, Now: time.Now}
	fulfilmentLog := log.With("service", "fulfilment")
	ful := fulfilmentd.Deps{JS: fulfilmentJS, Store: fulfilmentStore, Catalogue: d.catalogue, Auth: authn, Connectors: conns,
		Credentials: creds, Tasks: tasks, RevokeTasks: rev.TaskCompleter(revokerLog), Now: time.Now}
	ful.Routes(mux, fulfilmentLog)
	rev.Routes(mux, revokerLog)
	e.goWork("fulfilment", func() error { return ful.Consume(workCtx, fulfilmentLog) })
	e.goWork("revoker", func() error { return rev.Consume(workCtx, revokerLog) })
	e.targetURL = targetURL
	return nil
}

// credentialKey loads the dev key that encrypts issued credentials until they are retrieved, creating
// it on first use (32 random bytes, mode 0600, beside the signing keys).
func credentialKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		b = make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			return nil, err
		}
		if err := os.WriteFile(path, b, 0o600); err != nil {
			return nil, fmt.Errorf("write credential key: %w", err)
		}
		return b, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read credential key: %w", err)
	}
	if len(b) != 32 {
		return nil, fmt.Errorf("credential key %s must be 32 bytes", path)
	}
	return b, nil
}

// Token mints a bearer token for a directory user, for the CLI and curl.
func (e *Env) Token(user string) (string, error) { return e.issuer.Mint(user, time.Hour) }
