package httpapi

import (
	"context"
	"encoding/json/v2"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/api"
	"github.com/grantline/grantline/pkg/auth"
	"github.com/grantline/grantline/pkg/catalogue"
	"github.com/grantline/grantline/pkg/dependency"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/eventstore"
	"github.com/grantline/grantline/pkg/httpjson"
	"github.com/grantline/grantline/pkg/idempotency"
	"github.com/grantline/grantline/pkg/natstest"
	"github.com/grantline/grantline/pkg/topology"
	"github.com/grantline/grantline/services/intake/throttle"
)

// env is intake's HTTP API on a real server, with real NATS and the dev identity issuer over the demo
// directory (alice, bob, carol, dave, erin, frank).
type env struct {
	srv    *httptest.Server
	issuer *auth.DevIssuer
	js     jetstream.JetStream
	store  *eventstore.Store
	// revoker appends what the revoker would (a drift finding), policy and fulfilment what they would
	// (a decision and a grant).
	revoker, policy, fulfilment *eventstore.Store
	logs                        *strings.Builder
	mu                          *sync.Mutex
}

// newEnv starts the API; each option adjusts the handler before it serves.
func newEnv(t *testing.T, options ...func(*Handler)) *env {
	t.Helper()
	ctx := context.Background()
	ns := natstest.RunServer(t)
	_, js := natstest.Connect(t, ns.ClientURL())
	if err := eventstore.Provision(ctx, js, eventstore.DefaultSettings); err != nil {
		t.Fatal(err)
	}
	signer, _ := events.GenerateSigner(events.Intake, "intake-test")
	revokerSigner, _ := events.GenerateSigner(events.Revoker, "revoker-test")
	policySigner, _ := events.GenerateSigner(events.Policy, "policy-test")
	fulfilmentSigner, _ := events.GenerateSigner(events.Fulfilment, "fulfilment-test")
	verifier, _ := events.NewVerifier(events.NewTrustFile(time.Now().Add(-time.Minute), signer, revokerSigner, policySigner, fulfilmentSigner))
	open := func(s *events.Signer) *eventstore.Store {
		store, err := eventstore.Open(ctx, js, eventstore.Config{Signer: s, Verifier: verifier, Durability: eventstore.EmbeddedProbe(ns)})
		if err != nil {
			t.Fatal(err)
		}
		return store
	}
	store, revoker, policy, fulfilment := open(signer), open(revokerSigner), open(policySigner), open(fulfilmentSigner)
	keys, err := idempotency.Open(ctx, js, topology.IdempotencyBucket, "requests", 1)
	if err != nil {
		t.Fatal(err)
	}
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
	e := &env{srv: srv, issuer: issuer, js: js, store: store, revoker: revoker, policy: policy, fulfilment: fulfilment, logs: &strings.Builder{}, mu: &sync.Mutex{}}
	h := &Handler{Store: store, Catalogue: cat, Auth: authn, Idempotency: keys, Now: time.Now,
		Log: slog.New(slog.NewTextHandler(lockedWriter{e.mu, e.logs}, nil)), Readers: []string{"auditors"}}
	for _, o := range options {
		o(h)
	}
	h.Routes(mux)
	return e
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (e *env) token(t *testing.T, user string) string {
	t.Helper()
	tok, err := e.issuer.Mint(user, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// call sends body (a string or an io.Reader) as user ("" for no token) with extra headers.
func (e *env) call(t *testing.T, method, path, user string, body any, headers ...string) (int, []byte, http.Header) {
	t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case string:
		r = strings.NewReader(b)
	case io.Reader:
		r = b
	}
	req, _ := http.NewRequest(method, e.srv.URL+path, r)
	req.Header.Set("Content-Type", "application/json")
	if user != "" {
		req.Header.Set("Authorization", "Bearer "+e.token(t, user))
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := api.Client(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out, resp.Header
}

const goodBody = `{"entitlement":"analytics-read","justification":"weekly revenue report","duration":"2h","ticket":"OPS-1"}`

func (e *env) submitted(t *testing.T) []events.Event {
	t.Helper()
	st, _ := e.js.Stream(context.Background(), topology.EventsStream)
	info, _ := st.Info(context.Background())
	var out []events.Event
	for seq := uint64(1); seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(context.Background(), seq)
		if err != nil {
			continue
		}
		ev, err := events.Decode(m.Data)
		if err != nil {
			t.Fatal(err)
		}
		if ev.Type == events.TypeSubmitted {
			out = append(out, ev)
		}
	}
	return out
}

func TestSubmitAndReadYourWrite(t *testing.T) {
	e := newEnv(t)
	status, body, hdr := e.call(t, "POST", "/v1/requests", "alice", goodBody)
	if status != http.StatusAccepted {
		t.Fatalf("submit: %d %s", status, body)
	}
	var created Created
	if err := json.Unmarshal(body, &created); err != nil || !events.ValidRequestID(created.ID) || created.Status != events.StatusSubmitted {
		t.Fatalf("created %s (%v)", body, err)
	}
	if hdr.Get("Location") != "/v1/requests/"+created.ID {
		t.Fatalf("Location %q", hdr.Get("Location"))
	}
	status, body, _ = e.call(t, "GET", "/v1/requests/"+created.ID, "alice", nil)
	var view View
	if status != http.StatusOK || json.Unmarshal(body, &view) != nil {
		t.Fatalf("show: %d %s", status, body)
	}
	if view.Requester.ID != "alice" || view.Entitlement != "analytics-read" || view.DurationSeconds != 7200 || view.Channel != "http" {
		t.Fatalf("view %+v", view)
	}
	for user, want := range map[string]int{"erin": http.StatusOK, "bob": http.StatusOK, "dave": http.StatusNotFound} {
		if status, _, _ := e.call(t, "GET", "/v1/requests/"+created.ID, user, nil); status != want {
			t.Errorf("%s reading alice's request: %d, want %d", user, status, want)
		}
	}
}

// TestAFindingIsNotARequest: drift no request explains is recorded under a finding ID of its own; intake
// answers for it as for no request at all, also to a reader of every request, and nobody withdraws it.
func TestAFindingIsNotARequest(t *testing.T) {
	e := newEnv(t)
	id := events.FindingID("postgres", "role grantline_hotfix")
	if _, err := e.revoker.Update(context.Background(), id, func(*events.Request) ([]events.Draft, error) {
		return []events.Draft{{Payload: events.DriftDetected{Kind: events.DriftUnexplained, Connector: "postgres",
			TargetRef: "role grantline_hotfix", Observed: events.Observed{Present: true}, Action: events.DriftRecorded}}}, nil
	}); err != nil {
		t.Fatal(err)
	}
	_, absent, _ := e.call(t, "GET", "/v1/requests/"+events.NewID(), "erin", nil)
	for _, user := range []string{"erin", "alice"} {
		status, body, _ := e.call(t, "GET", "/v1/requests/"+id, user, nil)
		if status != http.StatusNotFound || len(body) != len(absent) {
			t.Errorf("%s reading the finding as a request: %d %s", user, status, body)
		}
	}
	if status, body, _ := e.call(t, "POST", "/v1/requests/"+id+"/withdraw", "erin", ""); status == http.StatusOK {
		t.Errorf("erin withdrew a finding: %s", body)
	}
}

// TestSubmitRefuses is bad-input.md §1 at the HTTP edge: each row is an input, the status it must get
// and the problem type.
func TestSubmitRefuses(t *testing.T) {
	e := newEnv(t)
	cases := []struct {
		name    string
		user    string
		body    any
		headers []string
		status  int
		problem string
	}{
		{"no token (I8)", "", goodBody, nil, 401, "unauthenticated"},
		{"a body over 64 KiB (I1)", "alice", `{"justification":"` + strings.Repeat("x", MaxBody) + `"}`, nil, 413, "body-too-large"},
		{"an endless chunked body (I1)", "alice", io.MultiReader(strings.NewReader(`{"justification":"`), endless{}), nil, 413, "body-too-large"},
		{"a pre-approved flag (I3, I15)", "alice", strings.Replace(goodBody, `{`, `{"approved":true,`, 1), nil, 400, "malformed-body"},
		{"a state (I15)", "alice", strings.Replace(goodBody, `{`, `{"state":"APPROVED",`, 1), nil, 400, "malformed-body"},
		{"a forged requester (I7)", "alice", strings.Replace(goodBody, `{`, `{"requester":"bob",`, 1), nil, 400, "malformed-body"},
		{"a duplicate key (I4)", "alice", strings.Replace(goodBody, `"duration":"2h"`, `"duration":"5s","duration":"8h"`, 1), nil, 400, "malformed-body"},
		{"a nested duplicate key (I4)", "alice", strings.Replace(goodBody, `{`, `{"subject":{"kind":"human","kind":"service_account","id":"alice"},`, 1), nil, 400, "malformed-body"},
		{"a case-variant key (I5)", "alice", strings.Replace(goodBody, `"entitlement"`, `"Entitlement"`, 1), nil, 400, "malformed-body"},
		{"trailing garbage (I6)", "alice", goodBody + `}{`, nil, 400, "malformed-body"},
		{"two JSON values (I6)", "alice", goodBody + goodBody, nil, 400, "malformed-body"},
		{"invalid UTF-8 (I6)", "alice", strings.Replace(goodBody, "weekly", "week\xffly", 1), nil, 400, "malformed-body"},
		{"deep nesting (I2)", "alice", strings.Replace(goodBody, `{`, `{"subject":`+strings.Repeat(`{"a":`, 200)+`1`+strings.Repeat(`}`, 200)+`,`, 1), nil, 400, "malformed-body"},
		{"not JSON", "alice", "entitlement=analytics-read", nil, 400, "malformed-body"},
		{"a form content type", "alice", goodBody, []string{"Content-Type", "application/x-www-form-urlencoded"}, 400, "malformed-body"},
		{"an expiry beyond the maximum (I11)", "alice", strings.Replace(goodBody, `"2h"`, `"9h"`, 1), nil, 422, "invalid-request"},
		{"an unknown entitlement", "alice", strings.Replace(goodBody, "analytics-read", "root", 1), nil, 422, "invalid-request"},
		{"a bad idempotency key", "alice", goodBody, []string{"Idempotency-Key", "has spaces"}, 400, "malformed-body"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, body, _ := e.call(t, "POST", "/v1/requests", tc.user, tc.body, tc.headers...)
			var p httpjson.Problem
			if err := json.Unmarshal(body, &p); err != nil {
				t.Fatalf("%d, not a problem document: %s", status, body)
			}
			if status != tc.status || p.Type != httpjson.ProblemTypeBase+tc.problem || p.Status != status {
				t.Fatalf("%d %s, want %d %s: %s", status, p.Type, tc.status, tc.problem, body)
			}
		})
	}
	if n := len(e.submitted(t)); n != 0 {
		t.Fatalf("%d requests were created from refused input", n)
	}
	e.mu.Lock()
	logs := e.logs.String()
	e.mu.Unlock()
	if !strings.Contains(logs, "forgery") {
		t.Fatal("a body naming a requester was not logged as a forgery attempt")
	}
}

// endless is a body that never ends.
type endless struct{}

func (endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'x'
	}
	return len(p), nil
}

func TestIdempotencyKey(t *testing.T) {
	e := newEnv(t)
	key := []string{"Idempotency-Key", "order-7"}
	s1, b1, _ := e.call(t, "POST", "/v1/requests", "alice", goodBody, key...)
	s2, b2, _ := e.call(t, "POST", "/v1/requests", "alice", goodBody, key...)
	if s1 != 202 || s2 != 202 || idOf(t, b1) != idOf(t, b2) {
		t.Fatalf("same key, same body: %d %s / %d %s", s1, b1, s2, b2)
	}
	s3, b3, _ := e.call(t, "POST", "/v1/requests", "alice", strings.Replace(goodBody, `"2h"`, `"3h"`, 1), key...)
	if s3 != http.StatusConflict || !strings.Contains(string(b3), "idempotency-key-reused") {
		t.Fatalf("same key, other body: %d %s", s3, b3)
	}
	// Another person's key space is their own.
	s4, b4, _ := e.call(t, "POST", "/v1/requests", "frank", goodBody, key...)
	if s4 != 202 || idOf(t, b4) == idOf(t, b1) {
		t.Fatalf("frank's identical key: %d %s\n%s", s4, b4, e.logs.String())
	}
	if n := len(e.submitted(t)); n != 2 {
		t.Fatalf("%d requests, want 2 (alice's once, frank's once)", n)
	}
}

// TestSubmitWhenTheBrokerDoesNotAnswer: a stream that has lost its quorum does not answer at all, so
// the JetStream call times out. That is NATS unavailable, answered 503 with Retry-After and the
// dependency named, which a client retries with its key; not a 500 (issue 18: two NATS nodes down).
// Here the idempotency bucket's calls time out at once, as they do after 5 s without a quorum.
func TestSubmitWhenTheBrokerDoesNotAnswer(t *testing.T) {
	e := newEnv(t, func(h *Handler) {
		ns := natstest.RunServer(t)
		nc, _ := natstest.Connect(t, ns.ClientURL())
		mute, err := jetstream.New(nc, jetstream.WithDefaultTimeout(time.Nanosecond))
		if err != nil {
			t.Fatal(err)
		}
		// Opened with a deadline of its own, which JetStream honours instead of the default.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if h.Idempotency, err = idempotency.Open(ctx, mute, topology.IdempotencyBucket, "requests", 1); err != nil {
			t.Fatal(err)
		}
	})
	status, body, header := e.call(t, "POST", "/v1/requests", "alice", goodBody, "Idempotency-Key", "order-8")
	var p httpjson.Problem
	if err := json.Unmarshal(body, &p); err != nil || status != http.StatusServiceUnavailable || p.Type != httpjson.ProblemTypeBase+"unavailable" ||
		p.Dependency != dependency.Broker || header.Get("Retry-After") == "" {
		t.Fatalf("submit while NATS does not answer: %d %s (Retry-After %q)\n%s", status, body, header.Get("Retry-After"), e.logs.String())
	}
	if n := len(e.submitted(t)); n != 0 {
		t.Fatalf("%d requests stored, want none", n)
	}
}

func TestConcurrentIdenticalSubmitsMakeOneRequest(t *testing.T) {
	e := newEnv(t)
	var wg sync.WaitGroup
	ids := make(chan string, 20)
	for range 20 {
		wg.Go(func() {
			status, body, _ := e.call(t, "POST", "/v1/requests", "alice", goodBody, "Idempotency-Key", "burst-1")
			if status != 202 {
				t.Errorf("%d %s", status, body)
				return
			}
			ids <- idOf(t, body)
		})
	}
	wg.Wait()
	close(ids)
	distinct := map[string]bool{}
	for id := range ids {
		distinct[id] = true
	}
	if len(distinct) != 1 {
		t.Fatalf("20 identical submits gave %d request IDs", len(distinct))
	}
	if n := len(e.submitted(t)); n != 1 {
		t.Fatalf("%d submitted events, want 1", n)
	}
}

// TestSubmissionLimit: a requester over the limit is answered 429 with Retry-After and a problem
// saying when to come back, before any work on the body; other requesters are not held back, and
// the requester is accepted again once a token is back.
func TestSubmissionLimit(t *testing.T) {
	clock := &struct {
		sync.Mutex
		t time.Time
	}{t: time.Now()}
	now := func() time.Time { clock.Lock(); defer clock.Unlock(); return clock.t }
	e := newEnv(t, func(h *Handler) { h.Submissions = throttle.New(throttle.Limit{Burst: 3, Every: 90 * time.Second}, now) })
	for i := range 3 {
		if status, b, _ := e.call(t, "POST", "/v1/requests", "alice", goodBody); status != http.StatusAccepted {
			t.Fatalf("alice's submission %d within the burst: %d %s", i+1, status, b)
		}
	}
	// Over the limit even with a body that would be refused: the limit comes first.
	for _, body := range []string{goodBody, `{"entitlement":"nope"}`} {
		status, b, h := e.call(t, "POST", "/v1/requests", "alice", body)
		var p httpjson.Problem
		if status != http.StatusTooManyRequests || h.Get("Retry-After") != "90" || json.Unmarshal(b, &p) != nil ||
			p.Type != httpjson.ProblemTypeBase+"too-many-submissions" || !strings.Contains(p.Detail, "retry after 1m30s") {
			t.Fatalf("alice over the limit: %d (Retry-After %q) %s", status, h.Get("Retry-After"), b)
		}
	}
	if status, b, _ := e.call(t, "POST", "/v1/requests", "bob", goodBody); status != http.StatusAccepted {
		t.Fatalf("bob while alice is limited: %d %s", status, b)
	}
	batch := `{"entitlements":["analytics-read","payments-admin"],"justification":"onboarding to the payments team","duration":"1h"}`
	if status, b, h := e.call(t, "POST", "/v1/request-batches", "alice", batch); status != http.StatusTooManyRequests || h.Get("Retry-After") != "90" {
		t.Fatalf("alice's batch over the limit: %d (Retry-After %q) %s", status, h.Get("Retry-After"), b)
	}
	if n := len(e.submitted(t)); n != 4 {
		t.Fatalf("%d submitted events, want alice's 3 and bob's 1", n)
	}
	clock.Lock()
	clock.t = clock.t.Add(90 * time.Second)
	clock.Unlock()
	if status, b, _ := e.call(t, "POST", "/v1/requests", "alice", goodBody); status != http.StatusAccepted {
		t.Fatalf("alice once a token is back: %d %s", status, b)
	}
}

func TestWithdraw(t *testing.T) {
	e := newEnv(t)
	_, body, _ := e.call(t, "POST", "/v1/requests", "alice", goodBody)
	id := idOf(t, body)
	// bob owns the entitlement, so he sees the request and is told why he may not withdraw it; dave
	// may not see it, so he is told exactly what he would be told of a request that does not exist.
	if status, b, _ := e.call(t, "POST", "/v1/requests/"+id+"/withdraw", "bob", `{"reason":"mine now"}`); status != http.StatusForbidden {
		t.Fatalf("bob withdrawing alice's request: %d %s", status, b)
	}
	unknownID := events.NewID()
	hidden, hiddenBody, _ := e.call(t, "POST", "/v1/requests/"+id+"/withdraw", "dave", `{"reason":"mine now"}`)
	absent, absentBody, _ := e.call(t, "POST", "/v1/requests/"+unknownID+"/withdraw", "dave", `{"reason":"mine now"}`)
	if hidden != http.StatusNotFound || strings.ReplaceAll(string(hiddenBody), id, unknownID) != string(absentBody) {
		t.Fatalf("dave withdrawing alice's request: %d %s; a request that does not exist: %d %s", hidden, hiddenBody, absent, absentBody)
	}
	if status, b, _ := e.call(t, "POST", "/v1/requests/"+id+"/withdraw", "alice", `{"reason":"not needed"}`); status != 202 || !strings.Contains(string(b), `"withdrawn"`) {
		t.Fatalf("withdraw: %d %s", status, b)
	}
	if status, _, _ := e.call(t, "POST", "/v1/requests/"+id+"/withdraw", "alice", ""); status != 202 {
		t.Fatalf("withdrawing twice should answer the same: %d", status)
	}
	if status, _, _ := e.call(t, "POST", "/v1/requests/"+events.NewID()+"/withdraw", "alice", ""); status != http.StatusNotFound {
		t.Fatalf("withdrawing an unknown request: %d", status)
	}
	if status, _, _ := e.call(t, "POST", "/v1/requests/not-an-id/withdraw", "alice", ""); status != http.StatusNotFound {
		t.Fatalf("withdrawing a malformed ID: %d", status)
	}
}

func idOf(t *testing.T, body []byte) string {
	t.Helper()
	var c Created
	if err := json.Unmarshal(body, &c); err != nil {
		t.Fatalf("%s: %v", body, err)
	}
	return c.ID
}

// grant brings request id to granted, as policy (auto-approved) and fulfilment would, for d.
func (e *env) grant(t *testing.T, id string, d time.Duration) {
	t.Helper()
	ctx := context.Background()
	if _, err := e.policy.Update(ctx, id, func(*events.Request) ([]events.Draft, error) {
		return []events.Draft{{Payload: events.PolicyDecided{Outcome: events.OutcomeAutoApproved, Reasons: []string{"low risk"},
			EffectiveDurationSeconds: int64(d / time.Second), PolicyRevision: "sha256:test", InputDigest: "sha256:test"}}}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.fulfilment.Update(ctx, id, func(*events.Request) ([]events.Draft, error) {
		return []events.Draft{{Payload: events.Granted{Connector: "postgres", TargetRef: "role grantline_test",
			Observed: events.Observed{Present: true}, ExpiresAt: time.Now().Add(d), Fulfiller: "service:fulfilment"}}}, nil
	}); err != nil {
		t.Fatal(err)
	}
}

// TestExtend: alice extends her active grant, and the view shows what it extends; each refusal row is
// a submission naming a grant it may not extend, refused on the field extends with nothing created.
func TestExtend(t *testing.T) {
	e := newEnv(t)
	extending := func(id, entitlement, duration string) string {
		return `{"entitlement":"` + entitlement + `","justification":"the report run is not finished","duration":"` + duration + `","extends":"` + id + `"}`
	}
	_, body, _ := e.call(t, "POST", "/v1/requests", "alice", goodBody)
	active := idOf(t, body)
	e.grant(t, active, 2*time.Hour)
	_, body, _ = e.call(t, "POST", "/v1/requests", "alice", goodBody, "Idempotency-Key", "to-revoke")
	revoked := idOf(t, body)
	e.grant(t, revoked, 2*time.Hour)
	if _, err := e.revoker.Update(context.Background(), revoked, func(*events.Request) ([]events.Draft, error) {
		return []events.Draft{{Payload: events.RevocationRequested{By: "alice", Reason: events.RevokeEarly}},
			{Payload: events.Revoked{Reason: events.RevokeEarly, Observed: events.Observed{Present: false}}}}, nil
	}); err != nil {
		t.Fatal(err)
	}
	_, body, _ = e.call(t, "POST", "/v1/requests", "alice", goodBody, "Idempotency-Key", "pending")
	pending := idOf(t, body)
	before := len(e.submitted(t))

	cases := []struct{ name, user, body, says string }{
		{"bob extends alice's grant", "bob", extending(active, "analytics-read", "1h"), "requester or its subject's owners"},
		{"alice extends her revoked grant", "alice", extending(revoked, "analytics-read", "1h"), "revoked"},
		{"alice extends a request not yet granted", "alice", extending(pending, "analytics-read", "1h"), "submitted"},
		{"alice extends her grant with another entitlement", "alice", extending(active, "payments-admin", "1h"), "not payments-admin"},
		{"alice extends a request that does not exist", "alice", extending(events.NewID(), "analytics-read", "1h"), "there is no request"},
		{"alice extends something that is not a request ID", "alice", extending("last-week", "analytics-read", "1h"), "must be a request ID"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, body, _ := e.call(t, "POST", "/v1/requests", tc.user, tc.body)
			if status != http.StatusUnprocessableEntity || !strings.Contains(string(body), `"extends"`) || !strings.Contains(string(body), tc.says) {
				t.Fatalf("%d %s, want 422 on extends saying %q", status, body, tc.says)
			}
		})
	}
	if n := len(e.submitted(t)); n != before {
		t.Fatalf("refused extensions created %d requests", n-before)
	}

	status, body, _ := e.call(t, "POST", "/v1/requests", "alice", extending(active, "analytics-read", "2h"))
	if status != http.StatusAccepted {
		t.Fatalf("alice extends her active grant: %d %s", status, body)
	}
	_, body, _ = e.call(t, "GET", "/v1/requests/"+idOf(t, body), "alice", nil)
	var view View
	if err := json.Unmarshal(body, &view); err != nil || view.Extends == nil {
		t.Fatalf("the extension's view %s (%v)", body, err)
	}
	if x := view.Extends; x.RequestID != active || x.DurationSeconds != 7200 || x.HeldSince.After(time.Now()) || !x.ExpiresAt.After(time.Now()) {
		t.Fatalf("the extension records %+v, want the active grant %s", x, active)
	}
}

// TestBatch: a submission for several entitlements is one request each, linked by a correlation ID and
// answered with every ID; a list with a duplicate or an unknown entitlement creates nothing; with an
// Idempotency-Key a retried batch answers the same IDs and creates nothing more.
func TestBatch(t *testing.T) {
	e := newEnv(t)
	batch := func(ents string) string {
		return `{"entitlements":[` + ents + `],"justification":"onboarding to the payments team","duration":"1h","ticket":"OPS-9"}`
	}
	for name, body := range map[string]string{
		"a duplicate":            batch(`"analytics-read","payments-admin","analytics-read"`),
		"an unknown entitlement": batch(`"analytics-read","root-everywhere"`),
	} {
		status, b, _ := e.call(t, "POST", "/v1/request-batches", "alice", body)
		if status != http.StatusUnprocessableEntity || !strings.Contains(string(b), "entitlements[") {
			t.Errorf("%s: %d %s, want 422 naming the entitlement", name, status, b)
		}
	}
	if n := len(e.submitted(t)); n != 0 {
		t.Fatalf("refused batches created %d requests", n)
	}

	key := []string{"Idempotency-Key", "onboarding-7"}
	body := batch(`"analytics-read","payments-admin","mainframe-operator"`)
	status, b1, _ := e.call(t, "POST", "/v1/request-batches", "alice", body, key...)
	var first Batch
	if err := json.Unmarshal(b1, &first); status != http.StatusAccepted || err != nil || !events.ValidRequestID(first.CorrelationID) || len(first.Requests) != 3 {
		t.Fatalf("batch: %d %s (%v)", status, b1, err)
	}
	for i, want := range []string{"analytics-read", "payments-admin", "mainframe-operator"} {
		it := first.Requests[i]
		_, vb, _ := e.call(t, "GET", "/v1/requests/"+it.ID, "alice", nil)
		var view View
		if err := json.Unmarshal(vb, &view); err != nil || it.Entitlement != want || view.Entitlement != want ||
			view.CorrelationID != first.CorrelationID || it.Status != events.StatusSubmitted {
			t.Fatalf("request %d (%s): %+v, view %s", i, want, it, vb)
		}
	}
	status, b2, _ := e.call(t, "POST", "/v1/request-batches", "alice", body, key...)
	var again Batch
	if err := json.Unmarshal(b2, &again); status != http.StatusAccepted || err != nil {
		t.Fatalf("retry: %d %s", status, b2)
	}
	if again.CorrelationID != first.CorrelationID || !slices.Equal(again.Requests, first.Requests) {
		t.Fatalf("a retried batch answers other requests: %+v, first %+v", again, first)
	}
	if status, b, _ := e.call(t, "POST", "/v1/request-batches", "alice", batch(`"analytics-read","payments-admin"`), key...); status != http.StatusConflict {
		t.Fatalf("the same key with another list: %d %s", status, b)
	}
	subs := e.submitted(t)
	if len(subs) != 3 {
		t.Fatalf("%d submitted events, want 3", len(subs))
	}
	for _, ev := range subs {
		if ev.CorrelationID != first.CorrelationID {
			t.Fatalf("event %s has correlation %q, want %q", ev.ID, ev.CorrelationID, first.CorrelationID)
		}
	}
	// Without a key, the same list again is a new batch.
	_, b3, _ := e.call(t, "POST", "/v1/request-batches", "alice", body)
	var other Batch
	if err := json.Unmarshal(b3, &other); err != nil || other.CorrelationID == first.CorrelationID || len(other.Requests) != 3 {
		t.Fatalf("a batch without a key: %s", b3)
	}
}
