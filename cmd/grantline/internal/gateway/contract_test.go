package gateway_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/grantline/grantline/api"
	"github.com/grantline/grantline/cmd/grantline/internal/gateway"
	"github.com/grantline/grantline/pkg/httpjson"
	"github.com/grantline/grantline/pkg/ops"
	approvalapi "github.com/grantline/grantline/services/approval/httpapi"
	fulfilmentapi "github.com/grantline/grantline/services/fulfilment/httpapi"
	intakeapi "github.com/grantline/grantline/services/intake/httpapi"
	"github.com/grantline/grantline/services/notifier/slackapi"
	queryapi "github.com/grantline/grantline/services/query/httpapi"
	revokerapi "github.com/grantline/grantline/services/revoker/httpapi"
)

// apis registers each service's API as its daemon does. Registering needs no dependencies; nothing is
// served.
var apis = map[gateway.Service][]func(httpjson.Mux){
	gateway.Intake:     {(&intakeapi.Handler{}).Routes},
	gateway.Approval:   {(&approvalapi.Handler{}).Routes},
	gateway.Fulfilment: {(&fulfilmentapi.Handler{}).Routes},
	gateway.Revoker:    {(&revokerapi.Handler{}).Routes},
	gateway.Query:      {(&queryapi.Handler{}).Routes},
	gateway.Notifier:   {(&slackapi.Handler{}).Routes},
}

// TestContract holds api/openapi.yaml and the routers equal: every route a service registers is
// documented for it and every route documented for it is registered (api.CompareRoutes, whose own
// tests show both directions failing over a fake mux), each documented pattern is the one a real mux
// routes its paths to, and every route documented for all services (health, metrics) is served by
// pkg/ops as the contract says.
func TestContract(t *testing.T) {
	for s, register := range apis {
		var listed api.Recorder
		mux := http.NewServeMux()
		for _, r := range register {
			r(&listed)
			r(mux)
		}
		if err := api.CompareRoutes(string(s), listed.Patterns()); err != nil {
			t.Error(err)
		}
		documented, err := api.Documented(string(s))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range documented {
			if _, got := mux.Handler(example(p)); got != p {
				t.Errorf("%s: a call to %s reaches %q", s, p, got)
			}
		}
	}

	h, err := ops.New(ops.Options{Service: "contract"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Shutdown(context.Background()) })
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	everywhere, err := api.Documented(api.Ops)
	if err != nil || len(everywhere) == 0 {
		t.Fatalf("routes every service serves: %v %v", everywhere, err)
	}
	for _, p := range everywhere {
		method, path, _ := strings.Cut(p, " ")
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		resp, err := api.Client(t).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed {
			t.Errorf("pkg/ops does not serve %s: %d", p, resp.StatusCode)
		}
	}
}

// TestTheGatewayForwardsTheDocumentedAPI: the gateway's table is the public API, exactly the routes
// the contract documents for a service, each sent to a service that serves it.
func TestTheGatewayForwardsTheDocumentedAPI(t *testing.T) {
	routes, err := api.Routes()
	if err != nil {
		t.Fatal(err)
	}
	forwarded := map[string]gateway.Service{}
	for _, r := range gateway.Routes {
		forwarded[r.Pattern] = r.Service
	}
	for _, r := range routes {
		if slices.Contains(r.Services, api.Ops) {
			continue
		}
		s, ok := forwarded[r.Pattern]
		switch {
		case !ok:
			t.Errorf("the gateway does not forward %s", r.Pattern)
		case !slices.Contains(r.Services, string(s)):
			t.Errorf("the gateway sends %s to %s; the contract says %v serve it", r.Pattern, s, r.Services)
		}
		delete(forwarded, r.Pattern)
	}
	for p := range forwarded {
		t.Errorf("the gateway forwards %s, which api/openapi.yaml does not document", p)
	}
}

// example is a request matching pattern, its wildcards filled in with a request ID.
func example(pattern string) *http.Request {
	method, path, _ := strings.Cut(pattern, " ")
	for {
		start := strings.Index(path, "{")
		if start < 0 {
			break
		}
		end := strings.Index(path[start:], "}")
		path = path[:start] + "01JTESTREQUEST0000000000000" + path[start+end+1:]
	}
	return httptest.NewRequest(method, path, nil)
}
