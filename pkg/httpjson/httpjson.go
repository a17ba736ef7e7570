// Package httpjson is the JSON edge every Grantline HTTP API shares: strict request bodies of bounded
// size, JSON answers, and RFC 9457 problem documents from one table of errors to problems. The table's
// rows every API shares (authentication, bodies, not found, conflicts, busy) are written here once;
// each service adds only the rows of its own domain (NewTable).
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

// Mux is what an API registers its routes on: an *http.ServeMux to serve them, or a recorder that
// lists them to compare with the HTTP contract (api.Recorder).
type Mux interface {
	HandleFunc(pattern string, handler func(http.ResponseWriter, *http.Request))
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
