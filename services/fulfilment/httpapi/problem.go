package httpapi

import (
	"errors"
	"net/http"

	"github.com/grantline/grantline/pkg/auth"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/eventstore"
	"github.com/grantline/grantline/pkg/httpjson"
	"github.com/grantline/grantline/services/fulfilment"
	"github.com/grantline/grantline/services/fulfilment/credential"
)

// Errors the handlers return besides the domain's own.
var (
	errNotFound     = errors.New("no such request")
	errForbidden    = errors.New("not allowed for this caller")
	errNoCredential = errors.New("no credential")
	errNotYet       = errors.New("the request is not granted yet")
	errMisdirected  = errors.New("revoke tasks are completed at the revoker")
)

// problemFor is the one table mapping errors to HTTP problems.
func problemFor(err error) (status int, slug, title string) {
	switch {
	case errors.Is(err, httpjson.ErrTooLarge):
		return http.StatusRequestEntityTooLarge, "body-too-large", "Request body too large"
	case errors.Is(err, httpjson.ErrMalformed):
		return http.StatusBadRequest, "malformed-body", "Malformed request body"
	case errors.Is(err, auth.ErrUnauthenticated):
		return http.StatusUnauthorized, "unauthenticated", "Authentication required"
	case errors.Is(err, errForbidden), errors.Is(err, fulfilment.ErrNotFulfiller):
		return http.StatusForbidden, "forbidden", "Forbidden"
	case errors.Is(err, errNotFound):
		return http.StatusNotFound, "not-found", "No such request"
	case errors.Is(err, fulfilment.ErrTaskNotOpen):
		return http.StatusNotFound, "no-open-task", "No such open task"
	case errors.Is(err, fulfilment.ErrTask):
		return http.StatusUnprocessableEntity, "invalid-completion", "The completion is not valid"
	case errors.Is(err, errNoCredential):
		return http.StatusNotFound, "no-credential", "This request has no credential"
	case errors.Is(err, errNotYet):
		return http.StatusConflict, "not-granted", "The request is not granted yet"
	case errors.Is(err, credential.ErrGone):
		return http.StatusGone, "credential-gone", "The credential was already retrieved or has expired"
	case errors.Is(err, errMisdirected):
		return http.StatusMisdirectedRequest, "misdirected", "Complete revoke tasks at the revoker"
	case errors.Is(err, events.ErrRefused):
		return http.StatusConflict, "state-conflict", "The request's current state does not allow this"
	case errors.Is(err, eventstore.ErrConflict), errors.Is(err, eventstore.ErrStale):
		return http.StatusServiceUnavailable, "busy", "The request is busy; try again"
	}
	return http.StatusInternalServerError, "internal", "Internal error"
}

// writeProblem answers r with the problem for err. Internal errors keep their detail out of the
// response (it is logged instead).
func writeProblem(w http.ResponseWriter, r *http.Request, err error) {
	status, slug, title := problemFor(err)
	p := httpjson.Problem{Type: httpjson.ProblemTypeBase + slug, Title: title, Status: status}
	if status != http.StatusInternalServerError {
		p.Detail = err.Error()
	}
	httpjson.WriteProblem(w, r, p)
}
