package queryd_test

import (
	"context"
	"encoding/json/v2"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/grantline/grantline/api"
	"github.com/grantline/grantline/pkg/auth"
	"github.com/grantline/grantline/pkg/catalogue"
	"github.com/grantline/grantline/pkg/consumer"
	"github.com/grantline/grantline/pkg/pgtest"
	"github.com/grantline/grantline/pkg/poll"
	"github.com/grantline/grantline/services/query/internal/querytest"
	"github.com/grantline/grantline/services/query/postgres"
	"github.com/grantline/grantline/services/query/queryd"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

// env is the query service wired as `grantline dev` wires it — Deps with Routes on a real HTTP server
// and Consume projecting in the background — over a real stream and database, with the dev identity
// issuer over the demo directory (alice, bob, carol, dave, erin, frank).
type env struct {
	*querytest.World
	srv    *httptest.Server
	issuer *auth.DevIssuer
	pool   *pgxpool.Pool
	store  *postgres.Store
	deps   queryd.Deps
	log    *slog.Logger
	now    time.Time
	tokens map[string]string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	w := querytest.NewWorld(t)
	pool, err := pgxpool.New(ctx, pgtest.New(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	cat, err := catalogue.Load("../../../examples/catalogue.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir, err := auth.LoadDirectory("../../../examples/directory.yaml")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	issuer, err := auth.OpenDevIssuer(t.TempDir(), srv.URL+"/dev/oidc", "grantline", dir)
	if err != nil {
		t.Fatal(err)
	}
	mux.Handle("/dev/oidc/", http.StripPrefix("/dev/oidc", issuer.Handler()))
	authn, err := auth.NewVerifier(ctx, issuer.VerifierConfig())
	if err != nil {
		t.Fatal(err)
	}
	e := &env{World: w, srv: srv, issuer: issuer, pool: pool, now: time.Now().UTC(), tokens: map[string]string{}}
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	deps := queryd.Deps{JS: w.JS, Verifier: w.Trust, DB: pool, Auth: authn, Catalogue: cat, Now: func() time.Time { return e.now },
		ProjectionStall: &consumer.Stall{}}
	if err := deps.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	deps.Routes(mux, log)
	e.deps, e.log = deps, log
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- deps.Consume(runCtx, log) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("consume: %v", err)
		}
	})
	if e.store, err = postgres.NewStore(pool, postgres.DefaultSchema); err != nil {
		t.Fatal(err)
	}
	return e
}

// caughtUp waits until the read side has applied every stored event.
func (e *env) caughtUp(t *testing.T) {
	t.Helper()
	last := e.LastSeq(t)
	poll.Until(t, 30*time.Second, fmt.Sprintf("the read side to reach sequence %d", last), func() bool {
		cp, err := e.store.Checkpoint(context.Background())
		return err == nil && cp >= last
	})
}

// get sends GET path as user ("" for no token) and returns the status and body.
func (e *env) get(t *testing.T, path, user string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+path, nil)
	if user != "" {
		tok, ok := e.tokens[user]
		if !ok {
			var err error
			if tok, err = e.issuer.Mint(user, time.Hour); err != nil {
				t.Fatal(err)
			}
			e.tokens[user] = tok
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := api.Client(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

// getJSON is get for a 200 answer decoded into v.
func (e *env) getJSON(t *testing.T, path, user string, v any) {
	t.Helper()
	status, body := e.get(t, path, user)
	if status != http.StatusOK {
		t.Fatalf("GET %s as %s: %d %s", path, user, status, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("GET %s: %v in %s", path, err, body)
	}
}
