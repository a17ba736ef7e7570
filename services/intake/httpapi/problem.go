package httpapi

import (
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/grantline/grantline/pkg/httpjson"
	"github.com/grantline/grantline/pkg/idempotency"
	"github.com/grantline/grantline/services/intake"
	"github.com/grantline/grantline/services/intake/throttle"
)

// problems is intake's table from errors to problems: its own rows; httpjson adds the shared ones.
var problems = httpjson.NewTable(
	httpjson.Malformed.For(errForgedBody).Warn("the body tries to set who acts or the state (forgery)"),
	httpjson.Row{Status: http.StatusUnprocessableEntity, Slug: "invalid-request", Title: "The request is not valid", Errs: []error{intake.ErrInvalid}},
	idempotency.Reused,
	httpjson.Row{Status: http.StatusTooManyRequests, Slug: "too-many-submissions", Title: "Too many submissions; retry after Retry-After seconds",
		Errs: []error{throttle.ErrLimited}},
)

// errForgedBody marks a malformed body that names a member setting who acts or the state (bad-input
// I7): refused like any unknown member, and logged as a forgery attempt.
var errForgedBody = errors.New("forged body")

// forgedActorFields are the members that try to set who acts or the state.
var forgedActorFields = []string{"requester", "approved_by", "on_behalf_of", "actor", "state", "approved", "status"}

// forgedError is a decoding error whose body named one of forgedActorFields. It reads as the decoding
// error, so the answer's detail is unchanged.
type forgedError struct{ err error }

func (e forgedError) Error() string        { return e.err.Error() }
func (e forgedError) Unwrap() error        { return e.err }
func (e forgedError) Is(target error) bool { return target == errForgedBody }

// decodeBody reads at most MaxBody bytes and decodes them strictly into v; a body refused for naming a
// member that sets who acts is marked as forged.
func decodeBody(r *http.Request, v any) error {
	err := httpjson.Decode(r, v, MaxBody)
	if errors.Is(err, httpjson.ErrMalformed) && slices.ContainsFunc(forgedActorFields, func(f string) bool { return strings.Contains(err.Error(), f) }) {
		return forgedError{err}
	}
	return err
}
