package queryd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/brokeraccess"
	"github.com/grantline/grantline/pkg/catalogue"
	"github.com/grantline/grantline/pkg/consumer"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/ops"
	"github.com/grantline/grantline/services/query/httpapi"
	"github.com/grantline/grantline/services/query/natsjs"
	"github.com/grantline/grantline/services/query/postgres"
	"github.com/grantline/grantline/services/query/projection"
)

// Deps are the query service's collaborators, built by New from Config (tests build them directly).
// The read side only reads the stream: it needs the trust file's verifier, never a signing key.
type Deps struct {
	JS       jetstream.JetStream
	Verifier *events.Verifier
	// DB holds the read side in Schema; Migrate prepares it.
	DB   *pgxpool.Pool
	Auth httpapi.Authenticator
	// Catalogue names each entitlement's owner groups, whose members read its requests.
	Catalogue *catalogue.Catalogue
	// Schema is the read side's schema; empty means postgres.DefaultSchema ("readside").
	Schema string
	// AuditorGroups read everything; nil means auditors and security.
	AuditorGroups []string
	// Now is the clock that judges overdue revocations in who-held answers; nil means time.Now.
	Now func() time.Time
	// ProjectionStall reports the projection stopped on a failure until it runs again (readiness); nil
	// tracks nothing.
	ProjectionStall *consumer.Stall
}

func (d Deps) schema() string {
	if d.Schema == "" {
		return postgres.DefaultSchema
	}
	return d.Schema
}

func (d Deps) store(schema string) (*postgres.Store, error) { return postgres.NewStore(d.DB, schema) }

func (d Deps) reader() *natsjs.Reader { return &natsjs.Reader{JS: d.JS} }

// Migrate creates or updates the read side's schema and tables. Call it before Routes serves.
func (d Deps) Migrate(ctx context.Context) error { return postgres.Migrate(ctx, d.DB, d.schema()) }

// Routes registers the query API (GET /v1/requests, GET /v1/requests/{id}/events, GET /v1/grants,
// GET /v1/audit/access, GET /v1/findings) on mux. It does not register GET /v1/requests/{id}, which intake serves. It
// panics on an invalid Schema, which Migrate reports as an error first.
func (d Deps) Routes(mux *http.ServeMux, log *slog.Logger) {
	st, err := d.store(d.schema())
	if err != nil {
		panic(fmt.Sprintf("query routes: %v", err))
	}
	auditors := d.AuditorGroups
	if auditors == nil {
		auditors = []string{"auditors", "security"}
	}
	owners := map[string][]string{}
	if d.Catalogue != nil {
		for _, e := range d.Catalogue.Entitlements {
			owners[e.ID] = e.OwnerGroups
		}
	}
	h := &httpapi.Handler{Store: st, Stream: d.reader(), Verifier: d.Verifier, Auth: d.Auth, AuditorGroups: auditors,
		OwnerGroups: owners, Now: d.Now, Log: log}
	h.Routes(mux)
}

// Consume migrates the read side, waits to be the one replica projecting into its schema, and keeps it
// up to date with the stream until ctx ends; then it returns nil. Failures on the way (NATS, the
// database) are logged and retried from the checkpoint; only a failure to set up is returned.
func (d Deps) Consume(ctx context.Context, log *slog.Logger) error {
	if err := d.Migrate(ctx); err != nil {
		return ignoreStop(ctx, err)
	}
	st, err := d.store(d.schema())
	if err != nil {
		return err
	}
	release, err := st.Lead(ctx)
	if err != nil {
		return ignoreStop(ctx, err)
	}
	defer release()
	log = log.With("projection", d.schema())
	log.Info("projecting the evidence stream")
	p := &projection.Projector{Source: d.reader(), Sink: st, Verifier: d.Verifier, Log: log, Stall: d.ProjectionStall}
	return p.Run(ctx)
}

// Rebuild projects the stream from sequence 1 into schema (created if need be; a schema already part
// way through resumes from its checkpoint) up to the stream's last sequence when it starts, beside the
// live read side, and returns that sequence. Compare then checks the two agree. It logs its progress
// and rate every rebuildProgressEvery, and both at the end.
func (d Deps) Rebuild(ctx context.Context, schema string, log *slog.Logger) (uint64, error) {
	if err := postgres.Migrate(ctx, d.DB, schema); err != nil {
		return 0, err
	}
	st, err := d.store(schema)
	if err != nil {
		return 0, err
	}
	last, err := d.reader().LastSeq(ctx)
	if err != nil {
		return 0, err
	}
	log = log.With("projection", schema)
	var at atomic.Uint64
	start := time.Now()
	report := func(msg string) {
		seq, took := at.Load(), time.Since(start)
		log.Info(msg, "checkpoint", seq, "of", last, "elapsed", took.Round(time.Second).String(),
			"events_per_s", int(float64(seq)/max(took.Seconds(), 1e-3)))
	}
	tick := time.NewTicker(rebuildProgressEvery)
	defer tick.Stop()
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				report("rebuilding")
			}
		}
	}()
	p := &projection.Projector{Source: d.reader(), Sink: st, Verifier: d.Verifier, Log: log, Progress: at.Store}
	if err := p.CatchUp(ctx, last); err != nil {
		return 0, fmt.Errorf("rebuild into %s: %w", schema, err)
	}
	report("rebuilt")
	return last, nil
}

// rebuildProgressEvery is how often a rebuild logs how far it is.
const rebuildProgressEvery = 5 * time.Second

// Compare lists the differences between the live read side and the one in schema (postgres.Compare).
func (d Deps) Compare(ctx context.Context, schema string) ([]string, error) {
	return postgres.Compare(ctx, d.DB, d.schema(), schema)
}

func ignoreStop(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// open builds the collaborators every use of the read side needs from cfg on js: the trust file's
// verifier, the catalogue and the database.
func open(ctx context.Context, cfg Config, js jetstream.JetStream) (Deps, error) {
	verifier, err := events.LoadTrustFile(cfg.TrustFile)
	if err != nil {
		return Deps{}, err
	}
	cat, err := catalogue.Load(cfg.Catalogue)
	if err != nil {
		return Deps{}, err
	}
	pool, err := pgxpool.New(ctx, cfg.DatabaseURL)
	if err != nil {
		return Deps{}, fmt.Errorf("database: %w", err)
	}
	return Deps{JS: js, Verifier: verifier, DB: pool, Catalogue: cat, Schema: cfg.Schema, AuditorGroups: cfg.AuditorGroups,
		Now: time.Now, ProjectionStall: &consumer.Stall{}}, nil
}

// New builds the query service from cfg on host (whose connection has no store: the read side signs
// nothing): the verifier, the catalogue, the database (migrated before the API answers) and the
// token verifier. It serves the query API and keeps the projection up to date (Consume): a
// projection that cannot run stops the service, as an API over a read side that no longer moves
// would answer with ever staler data.
func New(ctx context.Context, cfg Config, host ops.Host) (ops.Service, error) {
	d, err := open(ctx, cfg, host.Conn.JS)
	if err != nil {
		return ops.Service{}, err
	}
	if d.Auth, err = cfg.OIDC.Verifier(ctx); err == nil {
		err = d.Migrate(ctx)
	}
	if err == nil && host.Meter != nil {
		var st *postgres.Store
		if st, err = d.store(d.schema()); err == nil {
			err = registerGauges(host.Meter, st, d.Now)
		}
	}
	if err != nil {
		d.DB.Close()
		return ops.Service{}, err
	}
	return ops.Service{Name: "query",
		Routes: func(mux *http.ServeMux) { d.Routes(mux, host.Log) },
		Checks: map[string]ops.Check{"database": func(ctx context.Context) error { return d.DB.Ping(ctx) },
			"projection": d.ProjectionStall.Check},
		Consume: func(ctx context.Context) error { return d.Consume(ctx, host.Log) },
		Close:   d.DB.Close,
	}, nil
}

// Run runs the read side as a process of its own (grantline-query) until ctx ends.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	return ops.Run(ctx, cfg.Base, ops.ReadsAs(brokeraccess.Query), log,
		func(ctx context.Context, host ops.Host) (ops.Service, error) { return New(ctx, cfg, host) })
}

// Command runs what args ask for: nothing or "serve" runs the service; "rebuild SCHEMA" projects the
// stream from sequence 1 into SCHEMA beside the live read side; "compare SCHEMA" lists, on out, how
// SCHEMA differs from the live read side, and fails if it does.
func Command(ctx context.Context, cfg Config, args []string, out io.Writer, log *slog.Logger) error {
	if len(args) == 0 || args[0] == "serve" && len(args) == 1 {
		return Run(ctx, cfg, log)
	}
	if len(args) != 2 || (args[0] != "rebuild" && args[0] != "compare") {
		return errors.New("usage: grantline-query [serve | rebuild SCHEMA | compare SCHEMA]")
	}
	conn, err := ops.Dial(ctx, cfg.Base, ops.ReadsAs(brokeraccess.Query), log)
	if err != nil {
		return err
	}
	defer conn.Close()
	deps, err := open(ctx, cfg, conn.JS)
	if err != nil {
		return err
	}
	defer deps.DB.Close()
	if args[0] == "rebuild" {
		last, err := deps.Rebuild(ctx, args[1], log)
		if err == nil {
			fmt.Fprintf(out, "rebuilt %s up to stream sequence %d\n", args[1], last)
		}
		return err
	}
	diffs, err := deps.Compare(ctx, args[1])
	if err != nil {
		return err
	}
	for _, d := range diffs {
		fmt.Fprintln(out, d)
	}
	if len(diffs) > 0 {
		return fmt.Errorf("%s differs from %s in %d ways", args[1], deps.schema(), len(diffs))
	}
	fmt.Fprintf(out, "%s equals %s\n", args[1], deps.schema())
	return nil
}
