package httpapi

import (
	"errors"
	"net/http"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/eventstore"
	"github.com/grantline/grantline/pkg/httpjson"
	"github.com/grantline/grantline/services/intake"
	"github.com/grantline/grantline/services/intake/idempotency"
)

// Problem is the problem document every error answer carries.
type Problem = httpjson.Problem

// ProblemTypeBase prefixes every problem type URI.
const ProblemTypeBase = httpjson.ProblemTypeBase

// Errors the handlers return besides the domain's own.
var (
	errNotFound  = errors.New("no such request")
	errForbidden = errors.New("not allowed for this caller")
	errBadInput  = httpjson.ErrMalformed
	errTooLarge  = httpjson.ErrTooLarge
)

// problemFor is the one table mapping errors to HTTP problems.
func problemFor(err error) (status int, slug, title string) {
	switch {
	case errors.Is(err, errTooLarge):
		return http.StatusRequestEntityTooLarge, "body-too-large", "Request body too large"
	case errors.Is(err, errBadInput):
		return http.StatusBadRequest, "malformed-body", "Malformed request body"
	case errors.Is(err, intake.ErrInvalid):
		return http.StatusUnprocessableEntity, "invalid-request", "The request is not valid"
	case errors.Is(err, errUnauthenticated):
		return http.StatusUnauthorized, "unauthenticated", "Authentication required"
	case errors.Is(err, errForbidden):
		return http.StatusForbidden, "forbidden", "Forbidden"
	case errors.Is(err, errNotFound):
		return http.StatusNotFound, "not-found", "No such request"
	case errors.Is(err, idempotency.ErrReused):
		return http.StatusConflict, "idempotency-key-reused", "Idempotency-Key reused with a different request"
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
	p := Problem{Type: ProblemTypeBase + slug, Title: title, Status: status}
	if status != http.StatusInternalServerError {
		p.Detail = err.Error()
	}
	var inv *intake.InvalidError
	if errors.As(err, &inv) {
		p.Errors = inv.Fields
	}
	httpjson.WriteProblem(w, r, p)
}
