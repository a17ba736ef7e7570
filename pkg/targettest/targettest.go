// Package targettest stands up, for the tests of the services that change access on targets
// (fulfilment and the revoker), what they run on: a real NATS server with Grantline's streams, an event
// store for every service (so a test writes what the other services would), the demo catalogue, the
// dev identity issuer over the demo directory behind a real HTTP server, a PostgreSQL target database
// with the demo roles, the credential bucket, and a log that tests can search.
//
// The demo directory: alice (engineers), bob (analytics-owners, payments-owners), carol (security),
// dave (operations), erin (auditors), frank (engineers, payments-owners).
//
// PostgreSQL roles belong to the server, not to a database: tests in one package that grant to the
// same person must not run in parallel.
package targettest

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/api"
	"github.com/grantline/grantline/pkg/auth"
	"github.com/grantline/grantline/pkg/catalogue"
	"github.com/grantline/grantline/pkg/connector/postgres"
	"github.com/grantline/grantline/pkg/credential"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/eventstore"
	"github.com/grantline/grantline/pkg/natsembed"
	"github.com/grantline/grantline/pkg/natstest"
	"github.com/grantline/grantline/pkg/pgtest"
	"github.com/grantline/grantline/pkg/poll"
)

// The people of the demo directory, as intake records them.
var (
	Alice = events.Principal{ID: "alice", Groups: []string{"engineers"}}
	Bob   = events.Principal{ID: "bob", Groups: []string{"analytics-owners", "payments-owners"}}
	Carol = events.Principal{ID: "carol", Groups: []string{"security"}}
	Dave  = events.Principal{ID: "dave", Groups: []string{"operations"}}
	Frank = events.Principal{ID: "frank", Groups: []string{"engineers", "payments-owners"}}
)

// SvcReporting is the demo service account.
var SvcReporting = events.RequestSubject{Kind: events.SubjectServiceAccount, ID: "svc-reporting", Owner: "payments-owners"}

// World is the environment of one test.
type World struct {
	NS        *server.Server
	JS        jetstream.JetStream
	Stores    map[events.Service]*eventstore.Store
	Catalogue *catalogue.Catalogue
	Issuer    *auth.DevIssuer
	Auth      *auth.Verifier
	// Mux is served at URL; tests register the services' routes on it.
	Mux *http.ServeMux
	URL string
	// Target is a superuser pool on the target database; PG the connector over it, with the demo roles.
	Target    *pgxpool.Pool
	TargetURL string
	PG        *postgres.Connector
	// Credentials is the bucket of issued credentials.
	Credentials *credential.Store
	Logs        *Logs
	Log         *slog.Logger
}

// Option changes what New builds on.
type Option func(*options)

type options struct{ history string }

// OnHistory builds the world on a history written by `grantline bench history` into the store
// directory dir: the broker serves that store (and the world writes into it) and the services sign
// with its keys, so that a benchmark runs against years of evidence rather than an empty stream.
func OnHistory(dir string) Option { return func(o *options) { o.history = dir } }

// testKeys makes a signing key of every service, and the verifier that trusts them.
func testKeys(t testing.TB) ([]*events.Signer, *events.Verifier) {
	t.Helper()
	var signers []*events.Signer
	for _, svc := range events.Services {
		s, err := events.GenerateSigner(svc, string(svc)+"-test")
		if err != nil {
			t.Fatal(err)
		}
		signers = append(signers, s)
	}
	verifier, err := events.NewVerifier(events.NewTrustFile(time.Now().Add(-time.Hour), signers...))
	if err != nil {
		t.Fatal(err)
	}
	return signers, verifier
}

// openHistory serves the store of a generated history (dir/nats, every write fsynced) and reads its
// keys: dir/keys/<service>.key and the trust file beside them, as `grantline dev` lays them out.
func openHistory(t testing.TB, dir string) (*server.Server, []*events.Signer, *events.Verifier) {
	t.Helper()
	ns, err := natsembed.Start(natsembed.Options{Dir: filepath.Join(dir, "nats"), Port: -1})
	if err != nil {
		t.Fatalf("serve the history in %s: %v", dir, err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	var signers []*events.Signer
	for _, svc := range events.Services {
		s, err := events.LoadSigner(filepath.Join(dir, "keys", string(svc)+".key"))
		if err != nil {
			t.Fatalf("history in %s: %v", dir, err)
		}
		signers = append(signers, s)
	}
	verifier, err := events.LoadTrustFile(filepath.Join(dir, "keys", "trust.json"))
	if err != nil {
		t.Fatalf("history in %s: %v", dir, err)
	}
	return ns, signers, verifier
}

// New builds a world, reading the demo catalogue and directory from examples (the repository's
// examples directory, relative to the test's package). The package's TestMain must use pgtest.Run.
func New(t testing.TB, examples string, opts ...Option) *World {
	t.Helper()
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	ctx := context.Background()
	w := &World{Stores: map[events.Service]*eventstore.Store{}, Logs: &Logs{}}
	var (
		signers  []*events.Signer
		verifier *events.Verifier
	)
	if o.history == "" {
		w.NS = natstest.RunServer(t)
		signers, verifier = testKeys(t)
	} else {
		w.NS, signers, verifier = openHistory(t, o.history)
	}
	_, w.JS = natstest.Connect(t, w.NS.ClientURL())
	if err := eventstore.Provision(ctx, w.JS, eventstore.DefaultSettings); err != nil {
		t.Fatal(err)
	}
	var err error
	for _, s := range signers {
		st, err := eventstore.Open(ctx, w.JS, eventstore.Config{Signer: s, Verifier: verifier, Durability: eventstore.EmbeddedProbe(w.NS)})
		if err != nil {
			t.Fatal(err)
		}
		w.Stores[s.Service()] = st
	}
	if w.Catalogue, err = catalogue.Load(filepath.Join(examples, "catalogue.yaml")); err != nil {
		t.Fatal(err)
	}
	dir, err := auth.LoadDirectory(filepath.Join(examples, "directory.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	w.Mux = http.NewServeMux()
	srv := httptest.NewServer(w.Mux)
	t.Cleanup(srv.Close)
	w.URL = srv.URL
	if w.Issuer, err = auth.OpenDevIssuer(t.TempDir(), srv.URL+"/dev/oidc", "grantline", dir); err != nil {
		t.Fatal(err)
	}
	w.Mux.Handle("/dev/oidc/", http.StripPrefix("/dev/oidc", w.Issuer.Handler()))
	if w.Auth, err = auth.NewVerifier(ctx, w.Issuer.VerifierConfig()); err != nil {
		t.Fatal(err)
	}

	w.TargetURL = pgtest.New(t)
	if w.Target, err = pgxpool.New(ctx, w.TargetURL); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Target.Close)
	if w.PG, err = postgres.New(w.Target, postgres.DemoRoles()); err != nil {
		t.Fatal(err)
	}
	if err := w.PG.EnsureRoles(ctx); err != nil {
		t.Fatal(err)
	}
	key, _ := credential.ParseKey(credential.GenerateKey())
	if w.Credentials, err = credential.Open(ctx, w.JS, key, 1); err != nil {
		t.Fatal(err)
	}
	w.Log = slog.New(slog.NewJSONHandler(w.Logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return w
}

// Request is what a test asks for.
type Request struct {
	Requester   events.Principal
	Subject     events.RequestSubject // defaults to the requester, a human
	Entitlement string
	Duration    time.Duration
	Emergency   bool
	// StartAt asks for access from a later time.
	StartAt *time.Time
	// Extends names the request whose active grant this one extends (intake's extends).
	Extends string
}

// Submit records r as intake would and returns the request ID.
func (w *World) Submit(t testing.TB, r Request) string {
	t.Helper()
	if r.Subject.ID == "" {
		r.Subject = events.RequestSubject{Kind: events.SubjectHuman, ID: r.Requester.ID}
	}
	id := events.NewID()
	s := events.Submitted{Requester: r.Requester, Subject: r.Subject, Entitlement: r.Entitlement,
		Justification: "INC-7: settlement job stuck", Ticket: "INC-7", DurationSeconds: int64(r.Duration / time.Second),
		StartAt: r.StartAt, Emergency: r.Emergency, Channel: "http"}
	if r.Extends != "" {
		ent, _ := w.Catalogue.Entitlement(r.Entitlement)
		x, err := w.Load(t, r.Extends).Request.MayExtend(s, time.Now(), ent.HeldAtMost())
		if err != nil {
			t.Fatalf("extend %s: %v", r.Extends, err)
		}
		s.Extends = &x
	}
	s.RequestDigest = s.Digest()
	w.Append(t, events.Intake, id, events.Draft{Payload: s, Actor: r.Requester.ID, CausationID: "http:" + id})
	return id
}

// Allow records policy's decision on request id: emergency for an emergency request (post-reviewed by
// security), auto_approved otherwise, with the requested duration as the effective one.
func (w *World) Allow(t testing.TB, id string) {
	t.Helper()
	s := w.Load(t, id).Request.Submitted()
	d := events.PolicyDecided{Outcome: events.OutcomeAutoApproved, Reasons: []string{"test"}, EffectiveDurationSeconds: s.DurationSeconds,
		PolicyRevision: "sha256:test", InputDigest: "sha256:test"}
	if s.Emergency {
		d.Outcome = events.OutcomeEmergency
		d.PostReview = &events.PostReview{Groups: []string{"security"}, Deadline: time.Now().Add(24 * time.Hour)}
	}
	w.Append(t, events.Policy, id, events.Draft{Payload: d, CausationID: "decide"})
}

// Approve records policy requiring one approval from approver's first group, then approver's review and
// the approval, as policy and approval would.
func (w *World) Approve(t testing.TB, id string, approver events.Principal) {
	t.Helper()
	l := w.Load(t, id)
	s := l.Request.Submitted()
	deadline := time.Now().Add(time.Hour)
	w.Append(t, events.Policy, id, events.Draft{Payload: events.PolicyDecided{Outcome: events.OutcomeApprovalRequired,
		Reasons: []string{"test"}, Stages: []events.Stage{{Name: "owners", Groups: approver.Groups[:1], MinApprovals: 1}},
		EffectiveDurationSeconds: s.DurationSeconds, ApprovalDeadline: &deadline, PolicyRevision: "sha256:test", InputDigest: "sha256:test"},
		CausationID: "decide"})
	w.Append(t, events.Approval, id,
		events.Draft{Payload: events.Reviewed{Reviewer: approver, Stage: 0, Decision: events.ReviewApprove, RequestDigest: s.RequestDigest},
			Actor: approver.ID, CausationID: "review-" + approver.ID},
		events.Draft{Payload: events.Approved{Approvers: []string{approver.ID}}, CausationID: "approve"})
}

// Approved submits r and allows it (auto_approved, or emergency): the request is approved.
func (w *World) Approved(t testing.TB, r Request) string {
	t.Helper()
	id := w.Submit(t, r)
	w.Allow(t, id)
	return id
}

// Append records drafts on request id as svc.
func (w *World) Append(t testing.TB, svc events.Service, id string, drafts ...events.Draft) {
	t.Helper()
	if _, err := w.Stores[svc].Update(context.Background(), id, func(*events.Request) ([]events.Draft, error) { return drafts, nil }); err != nil {
		t.Fatalf("%s appending to %s: %v", svc, id, err)
	}
}

// Load reads request id.
func (w *World) Load(t testing.TB, id string) *eventstore.Loaded {
	t.Helper()
	l, err := w.Stores[events.Intake].Load(context.Background(), id)
	if err != nil {
		t.Fatalf("load %s: %v", id, err)
	}
	return l
}

// WaitFor polls request id until cond holds and returns the request then.
func (w *World) WaitFor(t testing.TB, id string, timeout time.Duration, what string, cond func(*events.Request) bool) *events.Request {
	t.Helper()
	var r *events.Request
	poll.Until(t, timeout, what+" ("+id+")", func() bool {
		l, err := w.Stores[events.Intake].Load(context.Background(), id)
		if err != nil {
			return false
		}
		r = l.Request
		return cond(r)
	})
	return r
}

// Count is how many of request id's events have type typ.
func (w *World) Count(t testing.TB, id string, typ events.Type) int {
	t.Helper()
	n := 0
	for _, ev := range w.Load(t, id).Events {
		if ev.Type == typ {
			n++
		}
	}
	return n
}

// StreamBodies returns the stored bytes of every message in stream.
func (w *World) StreamBodies(t testing.TB, stream string) [][]byte {
	t.Helper()
	ctx := context.Background()
	st, err := w.JS.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			continue // deleted
		}
		out = append(out, m.Data)
	}
	return out
}

// Call sends body as user ("" for no token) and returns the status and the answer.
func (w *World) Call(t testing.TB, method, path, user, body string) (int, []byte) {
	t.Helper()
	return w.CallWith(t, http.Header{}, method, path, user, body)
}

// CallWith is Call with header's fields added (an Idempotency-Key, say).
func (w *World) CallWith(t testing.TB, header http.Header, method, path, user, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, w.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = header.Clone()
	req.Header.Set("Content-Type", "application/json")
	if user != "" {
		tok, err := w.Issuer.Mint(user, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := api.Client(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// Holds reports whether role member holds role by any path on the target.
func (w *World) Holds(t testing.TB, member, role string) bool {
	t.Helper()
	var ok bool
	err := w.Target.QueryRow(context.Background(), `SELECT COALESCE((SELECT pg_has_role(m.oid, r.oid, 'MEMBER')
		FROM pg_roles m, pg_roles r WHERE m.rolname = $1 AND r.rolname = $2), false)`, member, role).Scan(&ok)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// Memberships counts the pg_auth_members rows making member a direct member of role.
func (w *World) Memberships(t testing.TB, member, role string) int {
	t.Helper()
	var n int
	err := w.Target.QueryRow(context.Background(), `SELECT count(*) FROM pg_auth_members a JOIN pg_roles r ON r.oid = a.roleid
		JOIN pg_roles m ON m.oid = a.member WHERE r.rolname = $2 AND m.rolname = $1`, member, role).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// Login describes a role in pg_roles: whether it exists, may log in, and until when.
func (w *World) Login(t testing.TB, name string) (exists, canLogin bool, validUntil *time.Time) {
	t.Helper()
	err := w.Target.QueryRow(context.Background(), `SELECT rolcanlogin, rolvaliduntil FROM pg_roles WHERE rolname = $1`, name).
		Scan(&canLogin, &validUntil)
	if err != nil {
		return false, false, nil
	}
	return true, canLogin, validUntil
}

// GrantRoles counts the grant roles of request ids that still exist on the target.
func (w *World) GrantRoles(t testing.TB, ids ...string) int {
	t.Helper()
	names := make([]string, len(ids))
	for i, id := range ids {
		names[i] = postgres.GrantRole(id)
	}
	var n int
	if err := w.Target.QueryRow(context.Background(), `SELECT count(*) FROM pg_roles WHERE rolname = ANY($1)`, names).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// Logs is a log sink tests can search.
type Logs struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *Logs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String is everything logged so far.
func (l *Logs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Run runs fn (a service's Consume) until the test ends or the returned stop is called, which waits
// for it and fails the test if it returned an error.
func Run(t testing.TB, fn func(ctx context.Context) error) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("consume: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}
