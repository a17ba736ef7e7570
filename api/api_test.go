package api_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/grantline/grantline/api"
)

func TestTheContractIsValidOpenAPI31(t *testing.T) {
	doc, err := api.Load()
	if err != nil {
		t.Fatal(err)
	}
	if !doc.IsOpenAPI31OrLater() {
		t.Fatalf("openapi %s, want 3.1", doc.OpenAPI)
	}
	routes, err := api.Routes()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range routes {
		if len(r.Services) == 0 {
			t.Errorf("%s names no service (tag) that serves it", r.Pattern)
		}
	}
}

// TestCompareRoutes is the route check over a fake mux: the contract's own routes for a service pass,
// and a route added without documentation or documented without being served fails, by name.
func TestCompareRoutes(t *testing.T) {
	documented, err := api.Documented("intake")
	if err != nil || len(documented) == 0 {
		t.Fatalf("intake's routes: %v %v", documented, err)
	}
	register := func(patterns ...string) []string {
		var mux api.Recorder
		for _, p := range patterns {
			mux.HandleFunc(p, func(http.ResponseWriter, *http.Request) {})
		}
		return mux.Patterns()
	}
	cases := []struct {
		name   string
		served []string
		want   []string // what the error must name; none: no error
	}{
		{"exactly the documented routes", register(documented...), nil},
		{"a route added to the mux without documentation", register(append(documented, "DELETE /v1/requests/{id}")...),
			[]string{`intake serves "DELETE /v1/requests/{id}", which api/openapi.yaml does not document`}},
		{"a documented route no longer served", register(documented[1:]...),
			[]string{fmt.Sprintf("documents %q for intake, which does not serve it", documented[0])}},
		{"another service's route", register(append(documented, "GET /v1/grants")...), []string{`"GET /v1/grants"`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := api.CompareRoutes("intake", tc.served)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%v\ndoes not say %s", err, w)
				}
			}
		})
	}
	if err := api.CompareRoutes("billing", nil); err == nil {
		t.Error("a service the contract does not know passed")
	}
}

const (
	id      = "01JX0000000000000000000000"
	problem = "https://grantline.dev/problems/"
)

// TestCheck: what the contract allows and refuses, exchange by exchange. Each row is a request, the
// answer a service gave, and whether the contract allows it (and if not, what the error says).
func TestCheck(t *testing.T) {
	view := `{"id":"` + id + `","status":"granted","version":4,"requester":{"id":"alice","groups":["eng"]},
		"subject":{"kind":"human","id":"alice"},"entitlement":"analytics-read","justification":"weekly report",
		"duration_seconds":7200,"emergency":false,"channel":"http","submitted_at":"2026-01-01T00:00:00Z",
		"request_digest":"sha256:ab","last_seq":9%s}`
	grant := `{"request_id":"` + id + `","requester":"alice","subject":{"kind":"human","id":"alice"},"entitlement":"analytics-read",
		"emergency":false,"connector":"postgres","target_ref":"t","fulfiller":"fulfilment","observed":{"present":true},
		"granted_at":"2026-01-01T00:00:00Z","expires_at":"2026-01-01T02:00:00Z","outcome":"auto_approved",
		"policy_revision":"sha256:1","approvers":[],"active":true%s}`
	access := `{"entitlement":"analytics-read","at":"2026-01-01T01:00:00Z","holders":[%s]}`
	prob := func(slug string, status int) string {
		return fmt.Sprintf(`{"type":"%s%s","title":"t","status":%d,"instance":"/x"}`, problem, slug, status)
	}
	json := http.Header{"Content-Type": {"application/json"}}
	problemJSON := http.Header{"Content-Type": {"application/problem+json"}}
	with := func(h http.Header, kv ...string) http.Header {
		h = h.Clone()
		for i := 0; i+1 < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return h
	}
	cases := []struct {
		name        string
		method, url string
		token       bool
		body        string
		untyped     bool // the body is sent without a Content-Type
		status      int
		header      http.Header
		answer      string
		refused     string // "" when the contract allows the exchange
	}{
		{name: "a request view", method: "GET", url: "/v1/requests/" + id, token: true, status: 200, header: json,
			answer: fmt.Sprintf(view, "")},
		{name: "a request view with its grant (an event schema of pkg/events)", method: "GET", url: "/v1/requests/" + id, token: true, status: 200, header: json,
			answer: fmt.Sprintf(view, `,"grant":{"connector":"postgres","target_ref":"t","observed":{"present":true},"expires_at":"2026-01-01T02:00:00Z","fulfiller":"fulfilment"}`)},
		{name: "a grant without its connector, which the event schema requires", method: "GET", url: "/v1/requests/" + id, token: true, status: 200, header: json,
			answer:  fmt.Sprintf(view, `,"grant":{"target_ref":"t","observed":{"present":true},"expires_at":"2026-01-01T02:00:00Z","fulfiller":"fulfilment"}`),
			refused: "connector"},
		{name: "a member the contract does not document", method: "GET", url: "/v1/requests/" + id, token: true, status: 200, header: json,
			answer: fmt.Sprintf(view, `,"secret":"x"`), refused: "secret"},
		{name: "a required member missing", method: "GET", url: "/v1/requests/" + id, token: true, status: 200, header: json,
			answer: `{"id":"` + id + `"}`, refused: "status"},
		{name: "a status the operation does not list", method: "GET", url: "/v1/requests/" + id, token: true, status: 418, header: problemJSON,
			answer: prob("teapot", 418), refused: "status is not supported"},
		{name: "a problem type the status does not list", method: "GET", url: "/v1/requests/" + id, token: true, status: 404, header: problemJSON,
			answer: prob("busy", 404), refused: "type"},
		{name: "a problem as application/json", method: "GET", url: "/v1/requests/" + id, token: true, status: 404, header: json,
			answer: prob("not-found", 404), refused: "application/json"},
		{name: "a 401 with its challenge", method: "GET", url: "/v1/reviews", status: 401,
			header: with(problemJSON, "WWW-Authenticate", `Bearer realm="grantline"`), answer: prob("unauthenticated", 401)},
		{name: "a 401 without WWW-Authenticate", method: "GET", url: "/v1/reviews", status: 401, header: problemJSON,
			answer: prob("unauthenticated", 401), refused: "WWW-Authenticate"},
		{name: "a 503 without Retry-After", method: "GET", url: "/v1/reviews", token: true, status: 503, header: problemJSON,
			answer: prob("busy", 503), refused: "Retry-After"},
		{name: "a 202 without Location", method: "POST", url: "/v1/requests", token: true, status: 202, header: json,
			body:   `{"entitlement":"analytics-read","justification":"weekly revenue report","duration":"2h"}`,
			answer: `{"id":"` + id + `","status":"submitted"}`, refused: "Location"},
		{name: "a submission accepted", method: "POST", url: "/v1/requests", token: true, status: 202, header: with(json, "Location", "/v1/requests/"+id),
			body:   `{"entitlement":"analytics-read","justification":"weekly revenue report","duration":"2h"}`,
			answer: `{"id":"` + id + `","status":"submitted"}`},
		{name: "a body without a Content-Type, read as JSON", method: "POST", url: "/v1/requests", token: true, untyped: true, status: 202,
			header: with(json, "Location", "/v1/requests/"+id), body: `{"entitlement":"analytics-read","justification":"weekly revenue report"}`,
			answer: `{"id":"` + id + `","status":"submitted"}`, refused: "duration"},
		{name: "a service accepting a body the contract refuses", method: "POST", url: "/v1/requests", token: true, status: 202,
			header: with(json, "Location", "/v1/requests/"+id), body: `{"entitlement":"analytics-read","justification":"weekly revenue report","duration":"2h","requester":"bob"}`,
			answer: `{"id":"` + id + `","status":"submitted"}`, refused: "accepted a request the contract does not allow"},
		{name: "a service accepting a call without a token", method: "GET", url: "/v1/reviews", status: 200, header: json,
			answer: `{"items":[]}`, refused: "accepted a request the contract does not allow"},
		{name: "a refused body is not the contract's concern", method: "POST", url: "/v1/requests", token: true, status: 400, header: problemJSON,
			body: `{"requester":"bob"}`, answer: prob("malformed-body", 400)},
		{name: "a holding: a grant and beyond_expiry", method: "GET", url: "/v1/audit/access?entitlement=analytics-read&at=2026-01-01T01:00:00Z", token: true,
			status: 200, header: json, answer: fmt.Sprintf(access, fmt.Sprintf(grant, `,"beyond_expiry":true`))},
		{name: "a holding with a member neither documents", method: "GET", url: "/v1/audit/access?entitlement=analytics-read&at=2026-01-01T01:00:00Z", token: true,
			status: 200, header: json, answer: fmt.Sprintf(access, fmt.Sprintf(grant, `,"held":true`)), refused: "held"},
		{name: "a grant", method: "GET", url: "/v1/grants?active=true", token: true,
			status: 200, header: json, answer: `{"items":[` + fmt.Sprintf(grant, "") + `],"next_cursor":"djE6"}`},
		{name: "beyond_expiry is not a member of a grant", method: "GET", url: "/v1/grants", token: true,
			status: 200, header: json, answer: `{"items":[` + fmt.Sprintf(grant, `,"beyond_expiry":true`) + `]}`, refused: "beyond_expiry"},
		{name: "a query parameter out of its range, accepted", method: "GET", url: "/v1/grants?limit=900", token: true,
			status: 200, header: json, answer: `{"items":[]}`, refused: "limit"},
		{name: "readiness, without a token", method: "GET", url: "/readyz", status: 503, header: json, answer: `{"checks":{"nats":"timed out"}}`},
		{name: "liveness", method: "GET", url: "/livez", status: 200, header: http.Header{"Content-Type": {"text/plain; charset=utf-8"}}, answer: "ok"},
		{name: "an undocumented route", method: "GET", url: "/v1/secrets", token: true, status: 404, header: problemJSON,
			answer: prob("not-found", 404), refused: "documents no such route"},
		{name: "an undocumented method", method: "DELETE", url: "/v1/requests/" + id, token: true, status: 405, header: problemJSON,
			answer: prob("x", 405), refused: "documents no such route"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			r := httptest.NewRequest(tc.method, "http://127.0.0.1:8080"+tc.url, body)
			if tc.body != "" && !tc.untyped {
				r.Header.Set("Content-Type", "application/json")
			}
			if tc.token {
				r.Header.Set("Authorization", "Bearer x")
			}
			x := api.Exchange{Request: r, Status: tc.status, Header: tc.header, Body: []byte(tc.answer)}
			if tc.body != "" {
				x.RequestBody = []byte(tc.body)
			}
			err := api.Check(x)
			switch {
			case tc.refused == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.refused != "" && err == nil:
				t.Fatal("allowed")
			case tc.refused != "" && !strings.Contains(err.Error(), tc.refused):
				t.Fatalf("%v\ndoes not say %q", err, tc.refused)
			}
		})
	}
}

// recorder is a test that records its failures instead of failing.
type recorder struct {
	testing.TB
	mu     sync.Mutex
	errors []string
}

func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

// TestClientReportsWhatTheContractRefuses: a client over real HTTP reports an answer the contract
// refuses as a test failure, and still hands the answer to the caller, body and all.
func TestClientReportsWhatTheContractRefuses(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if string(body) != `{"reason":"done"}` {
			http.Error(w, "the body did not arrive whole", http.StatusTeapot)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		_, _ = io.WriteString(w, `{"id":"`+id+`","status":"withdrawn","why":"undocumented"}`)
	}))
	t.Cleanup(srv.Close)
	rec := &recorder{TB: t}
	req, _ := http.NewRequest("POST", srv.URL+"/v1/requests/"+id+"/withdraw", strings.NewReader(`{"reason":"done"}`))
	req.Header.Set("Authorization", "Bearer x")
	req.Header.Set("Content-Type", "application/json")
	resp, err := api.Client(rec).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusAccepted || !strings.Contains(string(body), "undocumented") {
		t.Fatalf("the caller got %d %s", resp.StatusCode, body)
	}
	if len(rec.errors) != 1 || !strings.Contains(rec.errors[0], "why") {
		t.Fatalf("reported %q, want the undocumented member", rec.errors)
	}
}
