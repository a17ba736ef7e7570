// Package apiclient calls Grantline's HTTP APIs (api/openapi.yaml) on behalf of a person: every call
// carries that person's bearer token, so each service decides what they may see and do exactly as it
// does for the CLI. The console holds no authority of its own; this package is how it asks.
//
// Each operation names the service that serves it. A Client reaches them through one origin (grantline
// dev, the gateway) or through a URL per service; a test holds the table equal to the contract.
package apiclient

import (
	"bytes"
	"context"
	"encoding/json/v2"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/grantline/grantline/pkg/httpjson"
	"github.com/grantline/grantline/pkg/telemetry"
)

// Service names a service with an HTTP API, as the contract tags its operations.
type Service string

// The services the console calls. Policy has no HTTP API.
const (
	Intake     Service = "intake"
	Approval   Service = "approval"
	Fulfilment Service = "fulfilment"
	Revoker    Service = "revoker"
	Query      Service = "query"
)

// Services lists every service the console calls.
func Services() []Service { return []Service{Intake, Approval, Fulfilment, Revoker, Query} }

// Operation is one documented route the console calls, and the service that serves it.
type Operation struct {
	// ID is the contract's operationId.
	ID string
	// Method and Path are the route as the contract writes it ("/v1/requests/{id}").
	Method, Path string
	Service      Service
}

// The operations the console calls.
var (
	opSubmit         = Operation{"submitRequest", http.MethodPost, "/v1/requests", Intake}
	opSubmitBatch    = Operation{"submitRequestBatch", http.MethodPost, "/v1/request-batches", Intake}
	opShow           = Operation{"showRequest", http.MethodGet, "/v1/requests/{id}", Intake}
	opWithdraw       = Operation{"withdrawRequest", http.MethodPost, "/v1/requests/{id}/withdraw", Intake}
	opList           = Operation{"listRequests", http.MethodGet, "/v1/requests", Query}
	opEvents         = Operation{"requestEvents", http.MethodGet, "/v1/requests/{id}/events", Query}
	opGrants         = Operation{"listGrants", http.MethodGet, "/v1/grants", Query}
	opWhoHad         = Operation{"whoHadAccess", http.MethodGet, "/v1/audit/access", Query}
	opFindings       = Operation{"listFindings", http.MethodGet, "/v1/findings", Query}
	opReviews        = Operation{"listReviews", http.MethodGet, "/v1/reviews", Approval}
	opReview         = Operation{"reviewRequest", http.MethodPost, "/v1/requests/{id}/reviews", Approval}
	opPostReview     = Operation{"postReviewRequest", http.MethodPost, "/v1/requests/{id}/post-review", Approval}
	opTasks          = Operation{"listTasks", http.MethodGet, "/v1/tasks", Fulfilment}
	opCompleteGrant  = Operation{"completeGrantTask", http.MethodPost, "/v1/tasks/{id}/complete", Fulfilment}
	opCompleteRevoke = Operation{"completeRevokeTask", http.MethodPost, "/v1/revoke-tasks/{id}/complete", Revoker}
	opCredential     = Operation{"retrieveCredential", http.MethodGet, "/v1/requests/{id}/credential", Fulfilment}
	opRevoke         = Operation{"revokeRequest", http.MethodPost, "/v1/requests/{id}/revoke", Revoker}
)

// Operations lists every operation the console calls.
func Operations() []Operation {
	return []Operation{opSubmit, opSubmitBatch, opShow, opWithdraw, opList, opEvents, opGrants, opWhoHad, opFindings, opReviews, opReview,
		opPostReview, opTasks, opCompleteGrant, opCompleteRevoke, opCredential, opRevoke}
}

// Config says where the services are.
type Config struct {
	// BaseURL is one origin that serves every route (grantline dev, the gateway), such as
	// "http://localhost:8080". It may be empty when ServiceURLs names every service.
	BaseURL string
	// ServiceURLs sends a service's operations to its own URL instead of BaseURL.
	ServiceURLs map[Service]string
	// HTTP makes the calls; nil means a client with a 30-second timeout.
	HTTP *http.Client
}

// Client calls the services. It is safe for concurrent use.
type Client struct {
	urls map[Service]*url.URL
	http *http.Client
}

// New returns a Client for cfg. It fails when a service has no URL (neither BaseURL nor its own) or a
// URL is not absolute http(s).
func New(cfg Config) (*Client, error) {
	c := &Client{urls: map[Service]*url.URL{}, http: cfg.HTTP}
	if c.http == nil {
		c.http = &http.Client{Timeout: 30 * time.Second}
	}
	var errs []error
	for _, s := range Services() {
		raw := cfg.ServiceURLs[s]
		if raw == "" {
			raw = cfg.BaseURL
		}
		u, err := url.Parse(raw)
		if raw == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("the %s service's URL %q is not an absolute http(s) URL", s, raw))
			continue
		}
		c.urls[s] = u
	}
	for s := range cfg.ServiceURLs {
		if !slices.Contains(Services(), s) {
			errs = append(errs, fmt.Errorf("no service %q has an HTTP API the console calls", s))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return c, nil
}

// Problem is a service's refusal: its RFC 9457 problem document and the HTTP status. A service that
// answers without one (a proxy in between, say) is described by the status alone.
type Problem struct {
	Status int
	httpjson.Problem
}

// Error says what the service said.
func (p *Problem) Error() string {
	if p.Detail != "" {
		return fmt.Sprintf("%s (HTTP %d): %s", p.Title, p.Status, p.Detail)
	}
	return fmt.Sprintf("%s (HTTP %d)", p.Title, p.Status)
}

// Slug is the problem type's last segment ("separation-of-duties"), or "" for an answer that was
// not a Grantline problem.
func (p *Problem) Slug() string {
	slug, _ := strings.CutPrefix(p.Type, httpjson.ProblemTypeBase)
	return slug
}

// AsProblem returns the service's refusal inside err, if err is one.
func AsProblem(err error) (*Problem, bool) {
	var p *Problem
	ok := errors.As(err, &p)
	return p, ok
}

// maxAnswer bounds what the console reads of one answer: the largest, a request's events, stays far
// below it.
const maxAnswer = 8 << 20

// call is one operation: op with its path parameters, a query, a JSON body (nil for none) and headers,
// sent with token. A 2xx answer is decoded into out (unless out is nil) and its bytes returned; any
// other answer is a *Problem.
type call struct {
	op     Operation
	args   []string
	query  url.Values
	body   any
	header http.Header
}

// PathFor is the operation's path with its parameters filled in, in order.
func (op Operation) PathFor(args ...string) string {
	path := op.Path
	for _, a := range args {
		start := strings.Index(path, "{")
		end := strings.Index(path, "}")
		path = path[:start] + url.PathEscape(a) + path[end+1:]
	}
	return path
}

func (c *Client) do(ctx context.Context, token string, k call, out any) ([]byte, error) {
	target := c.urls[k.op.Service].JoinPath(k.op.PathFor(k.args...))
	target.RawQuery = k.query.Encode()
	var body io.Reader
	if k.body != nil {
		b, err := json.Marshal(k.body)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, k.op.Method, target.String(), body)
	if err != nil {
		return nil, err
	}
	for name, values := range k.header {
		req.Header[name] = values
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	// The service continues the trace of the page that called it.
	telemetry.InjectHTTP(ctx, req.Header)
	if k.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: the %s service is unreachable: %w", k.op.ID, k.op.Service, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return nil, fmt.Errorf("%s: reading the answer: %w", k.op.ID, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, problemOf(resp.StatusCode, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return nil, fmt.Errorf("%s: the answer does not read as the contract says: %w", k.op.ID, err)
		}
	}
	return b, nil
}

func problemOf(status int, body []byte) *Problem {
	p := &Problem{Status: status}
	if json.Unmarshal(body, &p.Problem) != nil || p.Title == "" {
		p.Problem = httpjson.Problem{Title: http.StatusText(status), Status: status}
	}
	return p
}
