package revokerd_test

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/grantline/grantline/pkg/connector"
	"github.com/grantline/grantline/pkg/connector/postgres"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/pgtest"
	"github.com/grantline/grantline/services/fulfilment/fulfilmentd"
	"github.com/grantline/grantline/services/fulfilment/fulfilmenttest"
	"github.com/grantline/grantline/services/revoker"
	"github.com/grantline/grantline/services/revoker/revokerd"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

const examples = "../../../examples"

// env is fulfilment and the revoker on one mux, as `grantline dev` serves them, on a world with a
// PostgreSQL target.
type env struct {
	*fulfilmenttest.World
	fulfil fulfilmentd.Deps
	revoke revokerd.Deps
	// stopRevoker stops the running revoker; startRevoker runs it again.
	stopRevoker  func()
	noFulfilment bool
	noRevoker    bool
}

type option func(*env)

// fulfilmentOff leaves fulfilment out: the test records grants itself.
func fulfilmentOff(e *env) { e.noFulfilment = true }

// revokerOff leaves the revoker stopped until startRevoker.
func revokerOff(e *env) { e.noRevoker = true }

func newEnv(t testing.TB, opts ...option) *env {
	t.Helper()
	w := fulfilmenttest.New(t, examples)
	conns := connector.Set{postgres.Name: w.PG}
	e := &env{World: w, stopRevoker: func() {}}
	e.revoke = revokerd.Deps{JS: w.JS, Store: w.Stores[events.Revoker], Catalogue: w.Catalogue, Auth: w.Auth, Connectors: conns,
		Credentials: w.Credentials, Now: time.Now, Failures: revoker.FailurePolicy{Budget: 2, Every: time.Hour}, BackoffCap: 500 * time.Millisecond}
	e.fulfil = fulfilmentd.Deps{JS: w.JS, Store: w.Stores[events.Fulfilment], Catalogue: w.Catalogue, Auth: w.Auth, Connectors: conns,
		Credentials: w.Credentials, Tasks: w.Tasks, Now: time.Now}
	for _, o := range opts {
		o(e)
	}
	e.fulfil.Routes(w.Mux, w.Log)
	e.revoke.Routes(w.Mux, w.Log)
	if !e.noFulfilment {
		fulfilmenttest.Run(t, func(ctx context.Context) error { return e.fulfil.Consume(ctx, w.Log) })
	}
	if !e.noRevoker {
		e.startRevoker(t)
	}
	return e
}

func (e *env) startRevoker(t testing.TB) {
	t.Helper()
	e.stopRevoker = fulfilmenttest.Run(t, func(ctx context.Context) error { return e.revoke.Consume(ctx, e.Log) })
}

// someone is a person of their own (PostgreSQL roles are shared by every test of the package).
func someone(group string) events.Principal {
	return events.Principal{ID: "p-" + strings.ToLower(events.NewID()[18:]), Groups: []string{group}}
}

func granted(r *events.Request) bool { return r.Status() == events.StatusGranted }
func revoked(r *events.Request) bool { return r.Status() == events.StatusRevoked }

// switchable wraps the PostgreSQL connector with an outage switch for revocations.
type switchable struct {
	*postgres.Connector
	mu      sync.Mutex
	down    bool
	revokes int
}

func (s *switchable) Revoke(ctx context.Context, g connector.Grant) (events.Observed, error) {
	s.mu.Lock()
	down := s.down
	s.revokes++
	s.mu.Unlock()
	if down {
		return events.Observed{}, connector.Transient(postgres.ClassUnavailable, context.DeadlineExceeded)
	}
	return s.Connector.Revoke(ctx, g)
}

func (s *switchable) set(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = down
}

func (s *switchable) attempts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.revokes
}
