package approvald_test

import (
	"bytes"
	"context"
	"encoding/json/v2"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/api"
	"github.com/grantline/grantline/pkg/auth"
	"github.com/grantline/grantline/pkg/catalogue"
	"github.com/grantline/grantline/pkg/consumer"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/eventstore"
	"github.com/grantline/grantline/pkg/natstest"
	"github.com/grantline/grantline/pkg/pgtest"
	"github.com/grantline/grantline/services/approval/approvald"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

// world is the approval service as `grantline dev` runs it (Deps.Routes and Deps.Consume) on a real
// NATS server, a real PostgreSQL database and a real HTTP server, with the dev identity issuer over
// the demo directory (alice engineers; bob analytics-owners, payments-owners; carol security; dave
// operations; erin auditors; frank engineers, payments-owners) and an event store for every service,
// so tests write what intake, policy and fulfilment would.
type world struct {
	ns      string
	js      jetstream.JetStream
	signers map[events.Service]*events.Signer
	stores  map[events.Service]*eventstore.Store
	issuer  *auth.DevIssuer
	srv     *httptest.Server
	deps    approvald.Deps
	logs    *syncBuffer
	log     *slog.Logger
	// stop ends the running Consume and waits for it.
	stop func()
}

func newWorld(t testing.TB) *world {
	t.Helper()
	ctx := context.Background()
	ns := natstest.RunServer(t)
	_, js := natstest.Connect(t, ns.ClientURL())
	if err := eventstore.Provision(ctx, js, eventstore.DefaultSettings); err != nil {
		t.Fatal(err)
	}
	w := &world{ns: ns.ClientURL(), js: js, signers: map[events.Service]*events.Signer{}, stores: map[events.Service]*eventstore.Store{},
		logs: &syncBuffer{}}
	var all []*events.Signer
	for _, svc := range events.Services {
		s, err := events.GenerateSigner(svc, string(svc)+"-test")
		if err != nil {
			t.Fatal(err)
		}
		w.signers[svc] = s
		all = append(all, s)
	}
	verifier, err := events.NewVerifier(events.NewTrustFile(time.Now().Add(-time.Hour), all...))
	if err != nil {
		t.Fatal(err)
	}
	for _, svc := range events.Services {
		st, err := eventstore.Open(ctx, js, eventstore.Config{Signer: w.signers[svc], Verifier: verifier, Durability: eventstore.EmbeddedProbe(ns)})
		if err != nil {
			t.Fatal(err)
		}
		w.stores[svc] = st
	}

	dir, err := auth.LoadDirectory("../../../examples/directory.yaml")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	w.srv = httptest.NewServer(mux)
	t.Cleanup(w.srv.Close)
	if w.issuer, err = auth.OpenDevIssuer(t.TempDir(), w.srv.URL+"/dev/oidc", "grantline", dir); err != nil {
		t.Fatal(err)
	}
	mux.Handle("/dev/oidc/", http.StripPrefix("/dev/oidc", w.issuer.Handler()))
	authn, err := auth.NewVerifier(ctx, w.issuer.VerifierConfig())
	if err != nil {
		t.Fatal(err)
	}

	w.log = slog.New(slog.NewJSONHandler(w.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cat, err := catalogue.Load("../../../examples/catalogue.yaml")
	if err != nil {
		t.Fatal(err)
	}
	w.deps = approvald.Deps{JS: js, Store: w.stores[events.Approval], Catalogue: cat, Auth: authn, DB: newPool(t), Now: time.Now,
		InboxStall: &consumer.Stall{}}
	if err := w.deps.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	w.deps.Routes(mux, w.log)
	w.consume(t)
	return w
}

// newPool opens a fresh database.
func newPool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), pgtest.New(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// consume runs Deps.Consume until the test ends or w.stop is called.
func (w *world) consume(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.deps.Consume(ctx, w.log) }()
	var once sync.Once
	w.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("consume: %v", err)
			}
		})
	}
	t.Cleanup(w.stop)
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// lines returns the logged records that have every key and value of want.
func (s *syncBuffer) lines(want map[string]any) []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(s.b.String(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) != nil {
			continue
		}
		match := true
		for k, v := range want {
			if rec[k] != v {
				match = false
			}
		}
		if match {
			out = append(out, rec)
		}
	}
	return out
}

// The people of the demo directory, as intake records them.
var (
	alice = events.Principal{ID: "alice", Groups: []string{"engineers"}}
	frank = events.Principal{ID: "frank", Groups: []string{"engineers", "payments-owners"}}
	dave  = events.Principal{ID: "dave", Groups: []string{"operations"}}
)

// submit records, as intake, requester asking for entitlement for themselves.
func (w *world) submit(t testing.TB, requester events.Principal, entitlement string, emergency bool) string {
	t.Helper()
	id := events.NewID()
	s := events.Submitted{Requester: requester, Subject: events.RequestSubject{Kind: events.SubjectHuman, ID: requester.ID},
		Entitlement: entitlement, Justification: "INC-7: settlement job stuck", Ticket: "INC-7", DurationSeconds: 3600,
		Emergency: emergency, Channel: "http"}
	s.RequestDigest = s.Digest()
	w.append(t, events.Intake, id, events.Draft{Payload: s, Actor: requester.ID, CausationID: "http:" + id})
	return id
}

// append records drafts on request id as svc.
func (w *world) append(t testing.TB, svc events.Service, id string, drafts ...events.Draft) {
	t.Helper()
	if _, err := w.stores[svc].Update(context.Background(), id, func(*events.Request) ([]events.Draft, error) { return drafts, nil }); err != nil {
		t.Fatalf("%s appending to %s: %v", svc, id, err)
	}
}

// decide records, as policy, an approval_required decision with stages and a window ending at deadline.
func (w *world) decide(t testing.TB, id string, deadline time.Time, ordered bool, stages ...events.Stage) {
	t.Helper()
	w.append(t, events.Policy, id, events.Draft{Payload: events.PolicyDecided{Outcome: events.OutcomeApprovalRequired,
		Reasons: []string{"high risk"}, Stages: stages, StagesOrdered: ordered, EffectiveDurationSeconds: 3600,
		ApprovalDeadline: &deadline, PolicyRevision: "sha256:rev", InputDigest: "sha256:in"}, CausationID: "decide-" + id})
}

// paymentsAdmin is the demo policy's decision for payments-admin: the owners, then security.
func (w *world) paymentsAdmin(t testing.TB, requester events.Principal) string {
	t.Helper()
	id := w.submit(t, requester, "payments-admin", false)
	w.decide(t, id, time.Now().Add(24*time.Hour), true,
		events.Stage{Name: "owners", Groups: []string{"payments-owners"}, MinApprovals: 1},
		events.Stage{Name: "security", Groups: []string{"security"}, MinApprovals: 1})
	return id
}

// autoApproved records a request by alice that policy approved without review, and its grant.
func (w *world) autoApproved(t testing.TB) string {
	t.Helper()
	id := w.submit(t, alice, "analytics-read", false)
	w.append(t, events.Policy, id, events.Draft{Payload: events.PolicyDecided{Outcome: events.OutcomeAutoApproved,
		Reasons: []string{"low risk"}, EffectiveDurationSeconds: 3600, PolicyRevision: "sha256:rev", InputDigest: "sha256:in"},
		CausationID: "decide-" + id})
	w.grant(t, id)
	return id
}

// grant records fulfilment's grant of request id.
func (w *world) grant(t testing.TB, id string) {
	t.Helper()
	w.append(t, events.Fulfilment, id, events.Draft{Payload: events.Granted{Connector: "postgres", TargetRef: "payments/admin",
		Observed: events.Observed{Present: true}, ExpiresAt: time.Now().Add(20 * time.Minute), Fulfiller: "service:fulfilment"},
		CausationID: "grant-" + id})
}

// emergencyDecided records an emergency request by alice and the emergency decision with a
// post-review by security due at deadline, not granted yet.
func (w *world) emergencyDecided(t testing.TB, deadline time.Time) string {
	t.Helper()
	id := w.submit(t, alice, "payments-admin", true)
	w.append(t, events.Policy, id, events.Draft{Payload: events.PolicyDecided{Outcome: events.OutcomeEmergency,
		Reasons: []string{"break glass"}, EffectiveDurationSeconds: 1800,
		PostReview:     &events.PostReview{Groups: []string{"security"}, Deadline: deadline},
		PolicyRevision: "sha256:rev", InputDigest: "sha256:in"}, CausationID: "decide-" + id})
	return id
}

// emergency records an emergency request by alice, the emergency decision with a post-review by
// security due at deadline, and the grant.
func (w *world) emergency(t testing.TB, deadline time.Time) string {
	t.Helper()
	id := w.emergencyDecided(t, deadline)
	w.grant(t, id)
	return id
}

// load reads request id as the approval service does (verified).
func (w *world) load(t testing.TB, id string) *eventstore.Loaded {
	t.Helper()
	l, err := w.stores[events.Approval].Load(context.Background(), id)
	if err != nil {
		t.Fatalf("load %s: %v", id, err)
	}
	return l
}

// count is how many events of type typ request id holds.
func (w *world) count(t testing.TB, id string, typ events.Type) int {
	t.Helper()
	n := 0
	for _, ev := range w.load(t, id).Events {
		if ev.Type == typ {
			n++
		}
	}
	return n
}

// call sends body as user ("" for no token), with header's name and value pairs, and returns the status
// and body.
func (w *world) call(t testing.TB, method, path, user, body string, header ...string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, w.srv.URL+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	if user != "" {
		tok, err := w.issuer.Mint(user, time.Hour)
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

// problem decodes a problem document's type slug.
func problem(t testing.TB, body []byte) string {
	t.Helper()
	var p struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		return "(not a problem: " + string(body) + ")"
	}
	return strings.TrimPrefix(p.Type, "https://grantline.dev/problems/")
}

// forge publishes p for request id straight into the stream, signed with svc's key, correctly chained:
// what a service holding the wrong key (or a stolen one) could write if it bypassed the store.
func (w *world) forge(t testing.TB, id string, svc events.Service, p events.Payload, actor string) uint64 {
	t.Helper()
	ctx := context.Background()
	l, err := w.stores[events.Intake].Load(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	env, body, err := events.Draft{Payload: p, Actor: actor}.Seal(id, events.Approval, time.Now(), events.ChainHash(l.Records[len(l.Records)-1].Body))
	if err != nil {
		t.Fatal(err)
	}
	m := nats.NewMsg(events.NATSSubject(id, env.Type))
	m.Data = body
	m.Header.Set(events.SignatureHeader, w.signers[svc].Sign(body))
	ack, err := w.js.PublishMsg(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence
}

// settled reports whether durable has nothing pending or unacknowledged on stream.
func (w *world) settled(t testing.TB, stream, durable string) bool {
	t.Helper()
	c, err := w.js.Consumer(context.Background(), stream, durable)
	if err != nil {
		return false
	}
	info, err := c.Info(context.Background())
	return err == nil && info.NumPending == 0 && info.NumAckPending == 0
}
