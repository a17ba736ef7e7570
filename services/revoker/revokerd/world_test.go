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
	"github.com/grantline/grantline/pkg/idempotency"
	"github.com/grantline/grantline/pkg/pgtest"
	"github.com/grantline/grantline/pkg/targettest"
	"github.com/grantline/grantline/pkg/topology"
	"github.com/grantline/grantline/services/revoker"
	"github.com/grantline/grantline/services/revoker/reaction"
	"github.com/grantline/grantline/services/revoker/revokerd"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

const examples = "../../../examples"

// fulfilment is the actor and fulfiller fulfilment records on a grant it made through a connector.
const fulfilment = "service:fulfilment"

// env is the revoker on a world with a PostgreSQL target. Fulfilment does not run: a test records
// what fulfilment would (a grant on the target and its granted event, a manual task), so the revoker
// is tested on its own, as the peer it is.
type env struct {
	*targettest.World
	revoke revokerd.Deps
	// stopRevoker stops the running revoker; startRevoker runs it again.
	stopRevoker func()
	noRevoker   bool
}

type option func(*env)

// revokerOff leaves the revoker stopped until startRevoker.
func revokerOff(e *env) { e.noRevoker = true }

func newEnv(t testing.TB, opts ...option) *env {
	t.Helper()
	return newEnvOn(t, targettest.New(t, examples), opts...)
}

// newEnvOn is newEnv on the world w.
func newEnvOn(t testing.TB, w *targettest.World, opts ...option) *env {
	t.Helper()
	e := &env{World: w, stopRevoker: func() {}}
	lockKeys, err := idempotency.Open(context.Background(), w.JS, topology.LockIdempotencyBucket, "locks", 1)
	if err != nil {
		t.Fatal(err)
	}
	expiries, err := w.JS.CreateOrUpdateKeyValue(context.Background(), reaction.ExpiriesConfig(1))
	if err != nil {
		t.Fatal(err)
	}
	e.revoke = revokerd.Deps{JS: w.JS, Expiries: expiries, Store: w.Stores[events.Revoker], Catalogue: w.Catalogue, Auth: w.Auth,
		Connectors: connector.Set{postgres.Name: w.PG}, Credentials: w.Credentials, LockKeys: lockKeys, Now: time.Now,
		Failures: revoker.FailurePolicy{Budget: 2, Every: time.Hour}, BackoffCap: 500 * time.Millisecond}
	for _, o := range opts {
		o(e)
	}
	e.revoke.Routes(w.Mux, w.Log)
	if !e.noRevoker {
		e.startRevoker(t)
	}
	return e
}

func (e *env) startRevoker(t testing.TB) {
	t.Helper()
	e.stopRevoker = targettest.Run(t, func(ctx context.Context) error { return e.revoke.Consume(ctx, e.Log) })
}

// Granted submits r, allows it and grants it for r.Duration from now, as fulfilment would (grant).
func (e *env) Granted(t testing.TB, r targettest.Request) string {
	t.Helper()
	id := e.Approved(t, r)
	e.grant(t, id, r.Duration)
	return id
}

// grant does what fulfilment does for approved request id: the grant on the target through the
// PostgreSQL connector, then granted, expiring d from now, with what the target shows.
func (e *env) grant(t testing.TB, id string, d time.Duration) {
	t.Helper()
	expires := time.Now().Add(d)
	obs, fingerprint := e.grantOnTarget(t, id, expires)
	e.recordGrant(t, id, obs, expires, fingerprint)
}

// grantOnTarget grants request id on the target until expires and returns what the target shows; for
// a service account it first reserves the login's secret in the credential bucket, as fulfilment does,
// and returns a fingerprint for it.
func (e *env) grantOnTarget(t testing.TB, id string, expires time.Time) (obs events.Observed, fingerprint string) {
	t.Helper()
	ctx := context.Background()
	s := e.Load(t, id).Request.Submitted()
	ent, _ := e.Catalogue.Entitlement(s.Entitlement)
	g := connector.Grant{ID: id, Entitlement: ent, Subject: s.Subject, ExpiresAt: expires}
	if connector.IssuesCredential(e.PG, g) {
		var err error
		if g.Secret, err = e.Credentials.Reserve(ctx, id, time.Until(expires)+time.Minute, connector.NewSecret); err != nil {
			t.Fatal(err)
		}
		fingerprint = "sha256:0123456789abcdef"
	}
	obs, err := e.PG.Grant(ctx, g)
	if err != nil || !obs.Present {
		t.Fatalf("grant %s on the target: %+v %v", id, obs, err)
	}
	return obs, fingerprint
}

// recordGrant appends granted to request id as fulfilment: obs on the target, expiring at expires.
func (e *env) recordGrant(t testing.TB, id string, obs events.Observed, expires time.Time, fingerprint string) {
	t.Helper()
	e.Append(t, events.Fulfilment, id, events.Draft{Payload: events.Granted{Connector: postgres.Name, TargetRef: "test",
		Observed: obs, ExpiresAt: expires, Fulfiller: fulfilment, CredentialFingerprint: fingerprint}, Actor: fulfilment,
		CausationID: "test-grant"})
}

// someone is a person of their own (PostgreSQL roles are shared by every test of the package).
func someone(group string) events.Principal {
	return events.Principal{ID: "p-" + strings.ToLower(events.NewID()[18:]), Groups: []string{group}}
}

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

// RevokeBatch goes grant by grant through the switch.
func (s *switchable) RevokeBatch(ctx context.Context, gs []connector.Grant) []connector.Revocation {
	return connector.RevokeEach(ctx, s, gs)
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
