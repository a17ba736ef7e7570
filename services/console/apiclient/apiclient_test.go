package apiclient

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"testing"

	"go.opentelemetry.io/otel/trace"

	"github.com/grantline/grantline/api"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/telemetry"
)

// leftToTheCLI are the routes people use that the console does not offer yet, each with why: a route
// added to the contract must either be callable from the console or be named here.
var leftToTheCLI = map[string]string{
	"GET /v1/locks":              "locks are incident response by security, from `grantline lock` (issue 20); no console page yet",
	"POST /v1/locks":             "as above",
	"POST /v1/locks/{id}/remove": "as above",
	// Access reviews (issue 16) are run from `grantline review campaign`; a console page is future work.
	"POST /v1/campaigns":                "access reviews are run from `grantline review campaign` (issue 16); no console page yet",
	"GET /v1/campaigns":                 "as above",
	"GET /v1/campaigns/{id}":            "as above",
	"POST /v1/campaigns/{id}/decisions": "as above",
}

// TestTheOperationsAreTheContracts: every operation the console calls is a route of the HTTP
// contract, sent to a service the contract says serves it, and the console can call every route
// people use (all but the ops routes, the notifier's, which Slack calls, and those left to the CLI).
func TestTheOperationsAreTheContracts(t *testing.T) {
	routes, err := api.Routes()
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string][]string{}
	for _, r := range routes {
		if !slices.Contains(r.Services, api.Ops) && !slices.Contains(r.Services, "notifier") {
			documented[r.Pattern] = r.Services
		}
	}
	called := map[string]bool{}
	for _, op := range Operations() {
		pattern := op.Method + " " + op.Path
		called[pattern] = true
		services, ok := documented[pattern]
		switch {
		case !ok:
			t.Errorf("%s calls %s, which the contract does not document", op.ID, pattern)
		case !slices.Contains(services, string(op.Service)):
			t.Errorf("%s sends %s to %s; the contract says %v serve it", op.ID, pattern, op.Service, services)
		}
	}
	for pattern := range documented {
		if _, left := leftToTheCLI[pattern]; !called[pattern] && !left {
			t.Errorf("the console cannot call %s", pattern)
		}
	}
	for pattern := range leftToTheCLI {
		if _, ok := documented[pattern]; !ok || called[pattern] {
			t.Errorf("%s is listed as left to the CLI, but the contract does not document it or the console calls it", pattern)
		}
	}
}

// TestPerServiceURLs: with a URL per service each call goes to its own service, and a manual task is
// completed at the route its listing names (a revoke task at the revoker), never anywhere else.
func TestPerServiceURLs(t *testing.T) {
	seen := map[Service][]string{}
	serve := func(s Service, answer func(w http.ResponseWriter, r *http.Request)) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			seen[s] = append(seen[s], r.Method+" "+r.URL.Path+" "+r.Header.Get("Authorization"))
			answer(w, r)
		}))
		t.Cleanup(srv.Close)
		return srv.URL
	}
	problem := func(status int, slug string) func(http.ResponseWriter, *http.Request) {
		return func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(status)
			_, _ = w.Write([]byte(`{"type":"https://grantline.dev/problems/` + slug + `","title":"` + slug + `","status":` + strconv.Itoa(status) + "}"))
		}
	}
	answer := func(body string) func(http.ResponseWriter, *http.Request) {
		return func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(body))
		}
	}
	task := func(id, completeURL string) string {
		return `{"id":"` + id + `","request_id":"X","purpose":"revoke","fulfiller_groups":["ops"],"due_at":"2030-01-02T09:00:00Z",` +
			`"entitlement":"mainframe-operator","requester":"alice","subject":"alice","may_complete":true,"complete_url":"` + completeURL + `"}`
	}
	tasks := answer(`{"tasks":[` + task("X-revoke", "/v1/revoke-tasks/X-revoke/complete") + "," +
		task("Y-revoke", "https://elsewhere.example/v1/revoke-tasks/Y-revoke/complete") + `]}`)
	c, err := New(Config{ServiceURLs: map[Service]string{
		Intake: serve(Intake, problem(404, "not-found")), Approval: serve(Approval, problem(404, "not-found")),
		Fulfilment: serve(Fulfilment, tasks), Revoker: serve(Revoker, answer(`{"task_id":"X-revoke","request_id":"X","status":"revoked"}`)),
		Query: serve(Query, problem(404, "not-found")),
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := c.Request(ctx, "tok", "01J00000000000000000000000"); err == nil {
		t.Error("a 404 read as an answer")
	} else if p, ok := AsProblem(err); !ok || p.Status != 404 || p.Slug() != "not-found" {
		t.Errorf("Request error %v, want the not-found problem", err)
	}
	if want := "GET /v1/requests/01J00000000000000000000000 Bearer tok"; len(seen[Intake]) != 1 || seen[Intake][0] != want {
		t.Errorf("intake saw %v, want %q", seen[Intake], want)
	}

	got, err := c.CompleteTask(ctx, "tok", "X-revoke", "done by hand")
	if err != nil || got.Status != "revoked" {
		t.Fatalf("CompleteTask = %+v, %v", got, err)
	}
	if want := []string{"POST /v1/revoke-tasks/X-revoke/complete Bearer tok"}; !slices.Equal(seen[Revoker], want) {
		t.Errorf("the revoker saw %v, want %v", seen[Revoker], want)
	}
	for _, id := range []string{"Y-revoke", "Z-grant"} { // completed elsewhere; not open at all
		if _, err := c.CompleteTask(ctx, "tok", id, "done by hand"); err == nil {
			t.Errorf("%s: completed", id)
		} else if p, ok := AsProblem(err); !ok || p.Status != 404 || p.Slug() != "no-open-task" {
			t.Errorf("%s: %v, want the no-open-task problem", id, err)
		}
	}
	if len(seen[Revoker]) != 1 || !slices.Equal(seen[Fulfilment], slices.Repeat([]string{"GET /v1/tasks Bearer tok"}, 3)) {
		t.Errorf("fulfilment saw %v and the revoker %v: only the task lists and the one completion should have gone out", seen[Fulfilment], seen[Revoker])
	}
}

func TestNewRefusals(t *testing.T) {
	for name, cfg := range map[string]Config{
		"no URL at all":                     {},
		"a relative base URL":               {BaseURL: "/api"},
		"one service without a URL":         {ServiceURLs: map[Service]string{Intake: "http://a", Approval: "http://a", Fulfilment: "http://a", Revoker: "http://a"}},
		"a service the console never calls": {BaseURL: "http://a", ServiceURLs: map[Service]string{"policy": "http://b"}},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestAReviewCarriesItsActionsKey: the console names each review action (one key per rendered form),
// so the approval service answers the same form sent twice with the one review it recorded.
func TestAReviewCarriesItsActionsKey(t *testing.T) {
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Method+" "+r.URL.Path+" "+r.Header.Get("Idempotency-Key"))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{"request_id":"X","reviewer":"bob","stage":0,"stage_name":"owners","decision":"approve","request_digest":"d","status":"approved"}`))
	}))
	t.Cleanup(srv.Close)
	c, err := New(Config{BaseURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Review(context.Background(), "tok", "X", events.ReviewApprove, "", "d", "form-1"); err != nil {
		t.Fatal(err)
	}
	if want := []string{"POST /v1/requests/X/reviews form-1"}; !slices.Equal(got, want) {
		t.Fatalf("approval saw %v, want %v", got, want)
	}
}

// TestCallsContinueThePagesTrace: a call made while serving a traced page carries its traceparent,
// so the service called continues the page's trace.
func TestCallsContinueThePagesTrace(t *testing.T) {
	telemetry.InstallPropagator()
	var got string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Get("traceparent")
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"tasks":[]}`))
	}))
	t.Cleanup(srv.Close)
	c, err := New(Config{BaseURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	traceID, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	spanID, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: traceID, SpanID: spanID, TraceFlags: trace.FlagsSampled}))
	if _, err := c.Tasks(ctx, "tok"); err != nil {
		t.Fatal(err)
	}
	if want := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"; got != want {
		t.Errorf("the service saw traceparent %q, want %q", got, want)
	}
}
