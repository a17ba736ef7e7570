package gateway_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/grantline/grantline/cmd/grantline/internal/gateway"
)

// upstream is a service stand-in on real HTTP that records what reached it.
type upstream struct {
	t      *testing.T
	server *httptest.Server
	mu     sync.Mutex
	got    []string
}

func newUpstream(t *testing.T, answer func(w http.ResponseWriter, r *http.Request)) *upstream {
	u := &upstream{t: t}
	u.server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.got = append(u.got, r.Method+" "+r.URL.Path+" "+r.Header.Get("Authorization")+" "+string(body))
		u.mu.Unlock()
		answer(w, r)
	}))
	t.Cleanup(u.server.Close)
	return u
}

func (u *upstream) url() *url.URL {
	parsed, err := url.Parse(u.server.URL)
	if err != nil {
		u.t.Fatal(err)
	}
	return parsed
}

func (u *upstream) requests() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.got...)
}

func answer(status int, body string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/readyz" {
			w.WriteHeader(status)
			return
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

func start(t *testing.T, ups map[gateway.Service]*upstream) *httptest.Server {
	cfg := gateway.Config{Upstreams: map[gateway.Service]*url.URL{}}
	for s, u := range ups {
		cfg.Upstreams[s] = u.url()
	}
	h, err := gateway.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func do(t *testing.T, method, u, body string) (int, string) {
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer tok")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func fiveUpstreams(t *testing.T, fulfilment func(http.ResponseWriter, *http.Request)) map[gateway.Service]*upstream {
	return map[gateway.Service]*upstream{
		gateway.Intake:     newUpstream(t, answer(http.StatusOK, "intake")),
		gateway.Approval:   newUpstream(t, answer(http.StatusOK, "approval")),
		gateway.Fulfilment: newUpstream(t, fulfilment),
		gateway.Revoker:    newUpstream(t, answer(http.StatusOK, "revoker")),
		gateway.Query:      newUpstream(t, answer(http.StatusOK, "query")),
	}
}

func TestEachRouteReachesItsOwnerWithTheCallersCredentials(t *testing.T) {
	ups := fiveUpstreams(t, answer(http.StatusOK, "fulfilment"))
	srv := start(t, ups)
	for _, tc := range []struct{ method, path, want string }{
		{http.MethodPost, "/v1/requests", "intake"},
		{http.MethodGet, "/v1/requests/r1", "intake"},
		{http.MethodGet, "/v1/requests", "query"},
		{http.MethodGet, "/v1/requests/r1/events", "query"},
		{http.MethodGet, "/v1/reviews", "approval"},
		{http.MethodGet, "/v1/requests/r1/credential", "fulfilment"},
		{http.MethodGet, "/v1/tasks", "fulfilment"},
		{http.MethodPost, "/v1/tasks/t1-grant/complete", "fulfilment"},
		{http.MethodPost, "/v1/requests/r1/revoke", "revoker"},
		{http.MethodPost, "/v1/revoke-tasks/t1-revoke/complete", "revoker"},
	} {
		status, body := do(t, tc.method, srv.URL+tc.path, "{}")
		if status != http.StatusOK || body != tc.want {
			t.Errorf("%s %s: %d %q, want it answered by %s", tc.method, tc.path, status, body, tc.want)
		}
	}
	if got := ups[gateway.Intake].requests(); len(got) != 2 || got[0] != "POST /v1/requests Bearer tok {}" {
		t.Errorf("intake received %q, want the submit with its bearer token and body first", got)
	}
	// Each kind of task is completed at its owner alone, once: no service is offered the other's.
	if got := ups[gateway.Revoker].requests(); len(got) != 2 || got[1] != "POST /v1/revoke-tasks/t1-revoke/complete Bearer tok {}" {
		t.Errorf("the revoker received %q, want the early revocation and the revoke task's completion", got)
	}
	if status, _ := do(t, http.MethodDelete, srv.URL+"/v1/requests/r1", ""); status != http.StatusMethodNotAllowed {
		t.Errorf("DELETE on a request: %d, want 405 from the gateway itself", status)
	}
}

// TestReadyPerRoute: with the approval service not ready (its database down), the gateway stays ready
// (submissions still work) and says which routes are not; /readyz/approval is 503, /readyz/intake 200.
// With no service ready it is not ready at all.
func TestReadyPerRoute(t *testing.T) {
	ups := fiveUpstreams(t, answer(http.StatusOK, ""))
	ups[gateway.Approval] = newUpstream(t, answer(http.StatusServiceUnavailable, ""))
	srv := start(t, ups)
	status, body := do(t, http.MethodGet, srv.URL+"/readyz", "")
	var rd gateway.Readiness
	if err := json.Unmarshal([]byte(body), &rd); err != nil {
		t.Fatalf("readyz body %q: %v", body, err)
	}
	if status != http.StatusOK || rd.Routes["POST /v1/requests"] != "ok" || !strings.Contains(rd.Routes["POST /v1/requests/{id}/reviews"], "503") ||
		rd.Services[gateway.Fulfilment] != "ok" {
		t.Fatalf("readyz answered %d %+v, want 200 with the review routes not ready and the rest ready", status, rd)
	}
	if status, body := do(t, http.MethodGet, srv.URL+"/readyz/approval", ""); status != http.StatusServiceUnavailable || !strings.Contains(body, "approval") {
		t.Fatalf("readyz/approval answered %d %q, want 503", status, body)
	}
	if status, _ := do(t, http.MethodGet, srv.URL+"/readyz/intake", ""); status != http.StatusOK {
		t.Fatalf("readyz/intake answered %d, want 200", status)
	}
	if status, _ := do(t, http.MethodGet, srv.URL+"/readyz/nothing", ""); status != http.StatusNotFound {
		t.Fatalf("readyz/nothing answered %d, want 404", status)
	}
	for s := range ups {
		ups[s] = newUpstream(t, answer(http.StatusServiceUnavailable, ""))
	}
	srv = start(t, ups)
	if status, body := do(t, http.MethodGet, srv.URL+"/readyz", ""); status != http.StatusServiceUnavailable {
		t.Fatalf("readyz with no service ready answered %d %q", status, body)
	}
}

func TestAnUnreachableServiceIsA502Problem(t *testing.T) {
	ups := fiveUpstreams(t, answer(http.StatusOK, "fulfilment"))
	srv := start(t, ups)
	ups[gateway.Query].server.Close()
	status, body := do(t, http.MethodGet, srv.URL+"/v1/grants", "")
	if status != http.StatusBadGateway || !strings.Contains(body, "query service is unreachable") {
		t.Fatalf("answered %d %q, want a 502 problem naming query", status, body)
	}
}

func TestEveryUpstreamIsRequired(t *testing.T) {
	_, err := gateway.New(gateway.Config{Upstreams: map[gateway.Service]*url.URL{gateway.Intake: {Scheme: "http", Host: "x"}}})
	if err == nil || !strings.Contains(err.Error(), "query") || !strings.Contains(err.Error(), "approval") {
		t.Fatalf("New with one upstream: %v, want every missing one named", err)
	}
}

func TestWithAConsoleEveryOtherPathIsTheConsoles(t *testing.T) {
	ups := fiveUpstreams(t, answer(http.StatusOK, "fulfilment"))
	ups[gateway.Console] = newUpstream(t, answer(http.StatusOK, "console"))
	srv := start(t, ups)
	for _, tc := range []struct{ method, path, want string }{
		{http.MethodGet, "/", "console"},
		{http.MethodGet, "/requests/r1", "console"},
		{http.MethodPost, "/requests/r1/withdraw", "console"},
		{http.MethodGet, "/auth/callback?code=c&state=s", "console"},
		{http.MethodGet, "/static/console.css", "console"},
		{http.MethodPost, "/v1/requests/r1/withdraw", "intake"},
		{http.MethodGet, "/v1/grants", "query"},
		{http.MethodGet, "/livez", "ok\n"},
	} {
		status, body := do(t, tc.method, srv.URL+tc.path, "")
		if status != http.StatusOK || body != tc.want {
			t.Errorf("%s %s: %d %q, want it answered by %s", tc.method, tc.path, status, body, tc.want)
		}
	}
	ups[gateway.Console].server.Close()
	if status, body := do(t, http.MethodGet, srv.URL+"/readyz/console", ""); status != http.StatusServiceUnavailable || !strings.Contains(body, "console") {
		t.Fatalf("readyz/console with the console down answered %d %q, want 503 naming the console", status, body)
	}
}

// TestTheNotifierIsOptional: a deployment without the notifier answers Slack's callbacks with 502;
// with one, they reach it.
func TestTheNotifierIsOptional(t *testing.T) {
	srv := start(t, fiveUpstreams(t, answer(http.StatusOK, "fulfilment")))
	if status, body := do(t, http.MethodPost, srv.URL+"/v1/slack/interactions", "payload=x"); status != http.StatusBadGateway ||
		!strings.Contains(body, "notifier") {
		t.Errorf("without a notifier: %d %s", status, body)
	}
	ups := fiveUpstreams(t, answer(http.StatusOK, "fulfilment"))
	ups[gateway.Notifier] = newUpstream(t, answer(http.StatusOK, "notifier"))
	srv = start(t, ups)
	if status, body := do(t, http.MethodPost, srv.URL+"/v1/slack/interactions", "payload=x"); status != http.StatusOK || body != "notifier" {
		t.Errorf("with a notifier: %d %s", status, body)
	}
}
