package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
)

// Exchange is one call as a client saw it: the request (its body as sent, or nil when it was not
// kept whole) and the answer.
type Exchange struct {
	Request *http.Request
	// RequestBody is what was sent; nil when none was, or when it was too long to keep (then it is
	// not checked).
	RequestBody []byte
	Status      int
	Header      http.Header
	Body        []byte
}

// Check validates one exchange against the contract. The route must be documented; the answer's
// status must be one the operation lists, with the headers it requires and a body of its media type
// and schema (problem documents included, with their types). A request the service accepted (2xx)
// must itself be one the contract allows: documented parameters and body, and a bearer token where
// the operation is secured, so the contract is never stricter than the service. The error names the
// route and every mismatch.
func Check(x Exchange) error {
	c, err := loaded()
	if err != nil {
		return err
	}
	route, params, err := c.find(x.Request)
	if err != nil {
		return err
	}
	opts := &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true,
		RejectWhenRequestBodyNotSpecified: true, AuthenticationFunc: bearerPresent}
	in := &openapi3filter.RequestValidationInput{Request: withBody(x.Request, x.RequestBody), PathParams: params, Route: route, Options: opts}
	var errs []error
	if x.Status >= 200 && x.Status < 300 {
		if x.RequestBody == nil && x.Request.ContentLength != 0 && x.Request.Body != nil && x.Request.Body != http.NoBody {
			opts.ExcludeRequestBody = true
		}
		if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
			errs = append(errs, fmt.Errorf("the service accepted a request the contract does not allow: %w", err))
		}
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: x.Status, Header: x.Header,
		Body: io.NopCloser(bytes.NewReader(x.Body)), Options: opts}
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		errs = append(errs, fmt.Errorf("the answer %d is not one the contract allows: %w", x.Status, err))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%s %s (%s %s): %w", x.Request.Method, x.Request.URL.RequestURI(), route.Method, route.Path, err)
	}
	return nil
}

// find is the documented operation r calls, matched the way the services' muxes match it (a GET
// pattern also matches HEAD), with the values of its path parameters.
func (c *contract) find(r *http.Request) (*routers.Route, map[string]string, error) {
	_, pattern := c.mux.Handler(r)
	method, p, ok := strings.Cut(pattern, " ")
	if !ok {
		return nil, nil, fmt.Errorf("%s %s: the contract documents no such route", r.Method, r.URL.Path)
	}
	item := c.doc.Paths.Value(p)
	op := item.GetOperation(method)
	params := map[string]string{}
	got := strings.Split(r.URL.Path, "/")
	for i, seg := range strings.Split(p, "/") {
		if name, ok := strings.CutPrefix(seg, "{"); ok && i < len(got) {
			params[strings.TrimSuffix(name, "}")] = got[i]
		}
	}
	return &routers.Route{Spec: c.doc, Path: p, PathItem: item, Method: method, Operation: op}, params, nil
}

// bearerPresent is the contract's bearer scheme as a client sees it: a token was sent. Whether it is
// valid is the service's to say.
func bearerPresent(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	if in.SecurityScheme.Type == "http" && in.SecurityScheme.Scheme == "bearer" &&
		strings.HasPrefix(in.RequestValidationInput.Request.Header.Get("Authorization"), "Bearer ") {
		return nil
	}
	return errors.New("no bearer token")
}

// withBody is a copy of r reading body. A body sent without a Content-Type is JSON to the services
// (httpjson.Decode), so it is checked as JSON.
func withBody(r *http.Request, body []byte) *http.Request {
	c := r.Clone(context.Background())
	c.Body = io.NopCloser(bytes.NewReader(body))
	if len(body) > 0 && c.Header.Get("Content-Type") == "" {
		c.Header.Set("Content-Type", "application/json")
	}
	return c
}

// maxKept bounds the request body a validating transport keeps to check: a test may send an endless
// one on purpose.
const maxKept = 1 << 20

// Transport is base (http.DefaultTransport when nil) with every exchange checked against the contract
// (Check): a mismatch fails t with t.Errorf, so it is safe from any goroutine, and the caller still
// gets the answer to assert on.
func Transport(t testing.TB, base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &validating{t: t, base: base}
}

// Client is an HTTP client whose every exchange is checked against the contract (Transport).
func Client(t testing.TB) *http.Client {
	return &http.Client{Transport: Transport(t, nil)}
}

type validating struct {
	t    testing.TB
	base http.RoundTripper
}

func (v *validating) RoundTrip(r *http.Request) (*http.Response, error) {
	sent := r
	var kept *keeper
	if r.Body != nil && r.Body != http.NoBody {
		kept = &keeper{body: r.Body}
		sent = r.Clone(r.Context())
		sent.Body = kept
	}
	resp, err := v.base.RoundTrip(sent)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	x := Exchange{Request: r, Status: resp.StatusCode, Header: resp.Header, Body: body}
	if kept != nil && kept.whole() {
		x.RequestBody = append([]byte{}, kept.buf.Bytes()...)
	}
	if err := Check(x); err != nil {
		v.t.Errorf("contract: %v", err)
	}
	return resp, nil
}

// keeper passes a request body through, keeping up to maxKept bytes of it.
type keeper struct {
	body      io.ReadCloser
	buf       bytes.Buffer
	overflown bool
	ended     bool
}

func (k *keeper) Read(p []byte) (int, error) {
	n, err := k.body.Read(p)
	if k.buf.Len()+n > maxKept {
		k.overflown = true
	} else {
		k.buf.Write(p[:n])
	}
	if errors.Is(err, io.EOF) {
		k.ended = true
	}
	return n, err
}

func (k *keeper) Close() error { return k.body.Close() }

// whole reports whether the body was read to its end and kept.
func (k *keeper) whole() bool { return k.ended && !k.overflown }
