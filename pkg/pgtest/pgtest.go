// Package pgtest gives each test a fresh, empty PostgreSQL database on a real server.
//
// A package using it must route its tests through Run, which stops the shared server when the tests
// are done:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }
//
//	func TestSomething(t *testing.T) {
//		url := pgtest.New(t)
//		...
//	}
//
// One throwaway cluster (see pglocal) serves the whole test binary; it starts on the first New, so
// tests that need no database cost nothing. Without a local PostgreSQL installation New fails the
// test: a database test that silently skips is a test that never runs.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/grantline/grantline/pkg/pglocal"
)

// shared is the one cluster of this test binary. New may run in parallel tests, hence the mutex;
// holding it across the start makes concurrent first callers wait for the one start.
var shared struct {
	mu      sync.Mutex
	inRun   bool
	started bool
	cluster *pglocal.Cluster
	err     error
	seq     int
}

const (
	startTimeout = 2 * time.Minute
	stopTimeout  = time.Minute
	dropTimeout  = 30 * time.Second
)

// Run runs the tests of m and then stops the shared cluster, returning the exit code for os.Exit. A
// failure to stop turns a passing run into a failing one, so leaked servers do not go unnoticed.
func Run(m *testing.M) int {
	shared.mu.Lock()
	shared.inRun = true
	shared.mu.Unlock()

	code := m.Run()

	shared.mu.Lock()
	defer shared.mu.Unlock()
	shared.inRun = false
	if shared.cluster == nil {
		return code
	}
	ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	if err := shared.cluster.Stop(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	shared.cluster = nil
	return code
}

// New returns the URL of a new, empty database for t, which is dropped when t's clean-ups run
// (sessions still open are disconnected). It fails t if the package's TestMain does not use Run or
// if PostgreSQL cannot be started.
func New(t testing.TB) string {
	t.Helper()
	c, name, err := next(t.Name())
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	url, err := c.CreateDatabase(t.Context(), name)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		// t.Context() is already cancelled when clean-ups run.
		ctx, cancel := context.WithTimeout(context.Background(), dropTimeout)
		defer cancel()
		if err := c.DropDatabase(ctx, name); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	return url
}

// NewPool returns a connection pool on a new, empty database for t (see New), closed when t's
// clean-ups run, before the database is dropped.
func NewPool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), New(t))
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// Outage makes the database at url (from New) unavailable to its clients, as a stopped server would
// be, without touching the other tests' databases on the shared server: its sessions are terminated
// and new connections refused until the returned function ends the outage (clean-up ends it too).
func Outage(t testing.TB, url string) (end func()) {
	t.Helper()
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatalf("pgtest: outage of %q: %v", url, err)
	}
	db := pgx.Identifier{cfg.Database}.Sanitize()
	shared.mu.Lock()
	c := shared.cluster
	shared.mu.Unlock()
	if c == nil {
		t.Fatal("pgtest: Outage needs a database from New")
	}
	admin := func(sql string, args ...any) {
		ctx, cancel := context.WithTimeout(context.Background(), dropTimeout)
		defer cancel()
		conn, err := pgx.Connect(ctx, c.URL())
		if err == nil {
			defer conn.Close(ctx)
			_, err = conn.Exec(ctx, sql, args...)
		}
		if err != nil {
			t.Fatalf("pgtest: outage of %s: %v", cfg.Database, err)
		}
	}
	admin("ALTER DATABASE " + db + " WITH ALLOW_CONNECTIONS false")
	admin("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", cfg.Database)
	var once sync.Once
	end = func() { once.Do(func() { admin("ALTER DATABASE " + db + " WITH ALLOW_CONNECTIONS true") }) }
	t.Cleanup(end)
	return end
}

// next returns the shared cluster, starting it if need be, and a database name unique within it.
func next(testName string) (*pglocal.Cluster, string, error) {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if !shared.inRun {
		return nil, "", errors.New("New needs the package's TestMain to call pgtest.Run, so that the " +
			"shared PostgreSQL server is stopped after the tests: func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }")
	}
	if !shared.started {
		shared.started = true
		// Not the first caller's context: the cluster outlives that test.
		ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
		defer cancel()
		shared.cluster, shared.err = pglocal.Start(ctx, pglocal.Options{})
	}
	if shared.err != nil {
		return nil, "", shared.err
	}
	shared.seq++
	return shared.cluster, dbName(shared.seq, testName), nil
}

// dbName makes a database name that is unique by its sequence number and, in server logs and error
// messages, recognisable by the test's name.
func dbName(seq int, testName string) string {
	name := fmt.Sprintf("pgtest_%d_", seq)
	var b strings.Builder
	for _, r := range strings.ToLower(testName) {
		if b.Len() >= 63-len(name) {
			break
		}
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return name + b.String()
}
