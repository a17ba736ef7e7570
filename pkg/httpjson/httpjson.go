// Package httpjson is the JSON edge every Grantline HTTP API shares: strict request bodies of bounded
// size, JSON answers, and RFC 9457 problem documents. Each service keeps its own table from errors to
// problems; this package only reads and writes.
package httpjson

import (
	"encoding/json/v2"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/grantline/grantline/pkg/events"
)

// ProblemTypeBase prefixes every problem type URI; the slug after it names the problem.
const ProblemTypeBase = "https://grantline.dev/problems/"

// Problem is an RFC 9457 problem document. Errors lists field-level problems of a refused body.
type Problem struct {
	Type     string       `json:"type"`
	Title    string       `json:"title"`
	Status   int          `json:"status"`
	Detail   string       `json:"detail,omitempty"`
	Instance string       `json:"instance,omitempty"`
	Errors   []FieldError `json:"errors,omitempty"`
}

// FieldError says what is wrong with one field of a request body.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// ErrMalformed and ErrTooLarge are wrapped by Decode's errors.
var (
	ErrMalformed = errors.New("malformed request body")
	ErrTooLarge  = errors.New("request body too large")
)

// Decode reads at most limit bytes of r's body and decodes them strictly into v (unknown, duplicate
// and case-variant members, trailing data and invalid UTF-8 are refused). A body that is not JSON by
// its Content-Type, or is malformed, returns an error wrapping ErrMalformed; one over the limit,
// ErrTooLarge, without reading the rest.
func Decode(r *http.Request, v any, limit int64) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return fmt.Errorf("%w: Content-Type must be application/json", ErrMalformed)
	}
	b, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, limit))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return fmt.Errorf("%w: over %d bytes", ErrTooLarge, limit)
	}
	if err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if err := events.UnmarshalStrict(b, v); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return nil
}

// Write answers with v as JSON and the given status.
func Write(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.MarshalWrite(w, v)
}

// WriteProblem answers r with p, filling in the instance and the headers its status calls for
// (WWW-Authenticate on 401, Retry-After on 503).
func WriteProblem(w http.ResponseWriter, r *http.Request, p Problem) {
	p.Instance = r.URL.Path
	switch p.Status {
	case http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", `Bearer realm="grantline"`)
	case http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", "1")
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(p.Status)
	_ = json.MarshalWrite(w, p)
}
