package devmode

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/grantline/grantline/pkg/auth"
	"github.com/grantline/grantline/pkg/brokeraccess"
	"github.com/grantline/grantline/pkg/config"
	pgconnector "github.com/grantline/grantline/pkg/connector/postgres"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/eventstore"
	"github.com/grantline/grantline/pkg/ops"
	"github.com/grantline/grantline/pkg/pglocal"
	"github.com/grantline/grantline/services/approval/approvald"
	"github.com/grantline/grantline/services/checkpointer/checkpointerd"
	"github.com/grantline/grantline/services/console/consoled"
	"github.com/grantline/grantline/services/fulfilment/fulfilmentd"
	"github.com/grantline/grantline/services/intake"
	"github.com/grantline/grantline/services/intake/intaked"
	"github.com/grantline/grantline/services/notifier/notifierd"
	"github.com/grantline/grantline/services/policy/policyd"
	"github.com/grantline/grantline/services/query/queryd"
	"github.com/grantline/grantline/services/revoker/revokerd"
)

// Audience is the audience of dev tokens.
const Audience = "grantline"

// OIDCDir is where the dev issuer keeps its key and issuer record inside the data directory.
func OIDCDir(dataDir string) string { return filepath.Join(dataDir, "oidc") }

// WitnessDir is where dev's checkpointer also writes every checkpoint (a directory witness).
func WitnessDir(dataDir string) string { return filepath.Join(dataDir, "witness") }

// demo is the example set the dev environment runs on.
type demo struct {
	dir          string
	directory    *auth.Directory
	integrations *intake.Integrations
}

// loadDemo reads the directory and the integrations from dir (the services read the rest themselves),
// and says where it looked when something is missing (`make dev` runs from the repository root).
func loadDemo(dir string) (demo, error) {
	if _, err := os.Stat(dir); err != nil {
		return demo{}, fmt.Errorf("examples directory %q not found (run from the repository root or set GRANTLINE_EXAMPLES): %w", dir, err)
	}
	d := demo{dir: dir}
	var err error
	if d.directory, err = auth.LoadDirectory(filepath.Join(dir, "directory.yaml")); err != nil {
		return demo{}, err
	}
	if d.integrations, err = intake.LoadIntegrations(filepath.Join(dir, "integrations.yaml")); err != nil {
		return demo{}, err
	}
	return d, nil
}

// host connects as u, svc's own NATS user, and opens the event store on that connection signing with
// svc's dev key (none for the read side, which signs nothing).
func (e *Env) host(ctx context.Context, u brokeraccess.User, logger *slog.Logger) (ops.Host, error) {
	nc, js, err := e.connect(u)
	if err != nil {
		return ops.Host{}, err
	}
	conn := &eventstore.Connection{NC: nc, JS: js}
	if signer, ok := e.keys.Signers[events.Service(u)]; ok {
		conn.Store, err = eventstore.Open(ctx, js, eventstore.Config{Signer: signer, Verifier: e.keys.Verifier,
			Durability: eventstore.EmbeddedProbe(e.nats)})
	}
	return ops.Host{Conn: conn, Meter: e.health.MeterProvider(), Log: logger.With("service", string(u))}, err
}

// services builds every service with its own package's New, as its binary does, each on its own
// connection as its own NATS user. Each service's Config is read by config.Parse, from the variables
// dev sets (the shared ones, the example files, the database, the demo target, the console's URLs and
// session key, the notifier's mail sink), so every other setting takes the binary's default.
func (e *Env) services(ctx context.Context, d demo, mux *http.ServeMux, logger *slog.Logger) (built []ops.Service, err error) {
	defer func() {
		if err != nil {
			for _, s := range slices.Backward(built) {
				if s.Close != nil {
					s.Close()
				}
			}
		}
	}()
	target, err := e.demoTarget(ctx)
	if err != nil {
		return nil, err
	}
	oidc := e.issuer.VerifierConfig()
	shared := map[string]string{
		"GRANTLINE_TRUST_FILE": e.keys.TrustFile, "GRANTLINE_CATALOGUE": filepath.Join(d.dir, "catalogue.yaml"),
		"GRANTLINE_OIDC_ISSUER": oidc.Issuer, "GRANTLINE_OIDC_AUDIENCE": oidc.Audience, "GRANTLINE_OIDC_JWKS_URL": oidc.JWKSURL,
		"GRANTLINE_DATABASE_URL": e.dbURL, "GRANTLINE_INTEGRATIONS": filepath.Join(d.dir, "integrations.yaml"),
		"GRANTLINE_POLICY_DIR": filepath.Join(d.dir, "policies"), "GRANTLINE_PG_TARGET_URL": target.url,
		"GRANTLINE_PG_ROLES": target.roles, "GRANTLINE_CREDENTIAL_KEY": target.credentialKey,
		"GRANTLINE_CHECKPOINT_KEY_FILE": e.keys.CheckpointerKey, "GRANTLINE_CHECKPOINT_INTERVAL": "2s",
		"GRANTLINE_WITNESS_DIR": WitnessDir(e.cfg.DataDir), "GRANTLINE_SUBMIT_BURST": strconv.Itoa(e.cfg.SubmitBurst),
	}
	console, err := e.consoleVariables()
	if err != nil {
		return nil, err
	}
	maps.Copy(shared, console)
	notifierVars, err := e.notifierVariables(d, mux)
	if err != nil {
		return nil, err
	}
	maps.Copy(shared, notifierVars)
	intakeCfg, policyCfg, approvalCfg := intaked.Defaults(), policyd.Defaults(), approvald.Defaults()
	queryCfg, fulfilmentCfg, revokerCfg := queryd.Defaults(), fulfilmentd.Defaults(), revokerd.Defaults()
	checkpointerCfg, notifierCfg, consoleCfg := checkpointerd.Defaults(), notifierd.Defaults(), consoled.Defaults()
	// In this order: the revoker attaches to the credential bucket fulfilment creates.
	steps := []struct {
		user  brokeraccess.User
		cfg   any
		build func(ops.Host) (ops.Service, error)
	}{
		{brokeraccess.Intake, &intakeCfg, func(h ops.Host) (ops.Service, error) { return intaked.New(ctx, intakeCfg, h) }},
		{brokeraccess.Policy, &policyCfg, func(h ops.Host) (ops.Service, error) { return policyd.New(ctx, policyCfg, h) }},
		{brokeraccess.Approval, &approvalCfg, func(h ops.Host) (ops.Service, error) { return approvald.New(ctx, approvalCfg, h) }},
		{brokeraccess.Query, &queryCfg, func(h ops.Host) (ops.Service, error) { return queryd.New(ctx, queryCfg, h) }},
		{brokeraccess.Fulfilment, &fulfilmentCfg, func(h ops.Host) (ops.Service, error) { return fulfilmentd.New(ctx, fulfilmentCfg, h) }},
		{brokeraccess.Revoker, &revokerCfg, func(h ops.Host) (ops.Service, error) { return revokerd.New(ctx, revokerCfg, h) }},
		{brokeraccess.Checkpointer, &checkpointerCfg, func(h ops.Host) (ops.Service, error) {
			return checkpointerd.New(ctx, checkpointerCfg, h)
		}},
		{brokeraccess.Notifier, &notifierCfg, func(h ops.Host) (ops.Service, error) { return notifierd.New(ctx, notifierCfg, h) }},
		// Last: its "/" answers every path the services' APIs do not.
		{brokeraccess.Console, &consoleCfg, func(h ops.Host) (ops.Service, error) { return consoled.New(ctx, consoleCfg, h) }},
	}
	for _, step := range steps {
		u := step.user
		environ := []string{events.EnvSigningKeyFile + "=" + filepath.Join(e.keys.Dir, string(u)+".key")}
		for k, v := range shared {
			environ = append(environ, k+"="+v)
		}
		if err := config.Parse(step.cfg, environ); err != nil {
			return built, fmt.Errorf("%s: %w", u, err)
		}
		host, err := e.host(ctx, u, logger)
		if err != nil {
			return built, err
		}
		svc, err := step.build(host)
		if err != nil {
			return built, fmt.Errorf("%s: %w", u, err)
		}
		built = append(built, svc)
	}
	return built, nil
}

// startDatabase uses GRANTLINE_DATABASE_URL, or else starts a private PostgreSQL cluster from the
// installed binaries with its data in the data directory, and checks the services' database answers.
func (e *Env) startDatabase(ctx context.Context) error {
	e.dbURL, e.dbWhere = e.cfg.DatabaseURL, "GRANTLINE_DATABASE_URL"
	if e.dbURL == "" {
		cluster, err := pglocal.Start(ctx, pglocal.Options{Dir: filepath.Join(e.cfg.DataDir, "postgres")})
		if err != nil {
			return fmt.Errorf("no GRANTLINE_DATABASE_URL, and a private PostgreSQL could not be started: %w", err)
		}
		e.postgres = cluster
		if e.dbURL, err = cluster.EnsureDatabase(ctx, "grantline"); err != nil {
			return err
		}
		e.dbWhere = "private PostgreSQL in " + filepath.Join(e.cfg.DataDir, "postgres") + " (" + e.dbURL + ")"
	}
	conn, err := pgx.Connect(ctx, e.dbURL)
	if err != nil {
		return fmt.Errorf("database: %w", err)
	}
	return conn.Close(ctx)
}

// target is the demo target the PostgreSQL connector grants on, as fulfilment's and the revoker's
// variables give it, and the key of issued credentials.
type target struct{ url, roles, credentialKey string }

// demoTarget prepares the demo target: a database of the dev PostgreSQL (the services' own database
// with GRANTLINE_DATABASE_URL) with the demo roles, and the dev credential key.
func (e *Env) demoTarget(ctx context.Context) (target, error) {
	t := target{url: e.dbURL}
	if e.postgres != nil {
		var err error
		if t.url, err = e.postgres.EnsureDatabase(ctx, "grantline_target"); err != nil {
			return target{}, err
		}
	}
	roles := pgconnector.DemoRoles()
	pg, err := pgconnector.Open(ctx, t.url, roles)
	if err != nil {
		return target{}, fmt.Errorf("demo target: %w", err)
	}
	defer pg.Close()
	if err := pg.EnsureRoles(ctx); err != nil {
		return target{}, fmt.Errorf("demo target roles: %w", err)
	}
	t.roles = roles.String()
	key, err := credentialKey(filepath.Join(e.cfg.DataDir, "keys", "credential.key"))
	if err != nil {
		return target{}, err
	}
	t.credentialKey = base64.StdEncoding.EncodeToString(key)
	return t, nil
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
