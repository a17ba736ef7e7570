package httpapi

import (
	"errors"
	"net/http"

	"github.com/grantline/grantline/pkg/auth"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/eventstore"
	"github.com/grantline/grantline/pkg/httpjson"
	"github.com/grantline/grantline/services/approval"
)

// Problem is the problem document every error answer carries.
type Problem = httpjson.Problem

// ProblemTypeBase prefixes every problem type URI.
const ProblemTypeBase = httpjson.ProblemTypeBase

// problemFor is the one table mapping errors to HTTP problems.
func problemFor(err error) (status int, slug, title string) {
	switch {
	case errors.Is(err, httpjson.ErrTooLarge):
		return http.StatusRequestEntityTooLarge, "body-too-large", "Request body too large"
	case errors.Is(err, httpjson.ErrMalformed):
		return http.StatusBadRequest, "malformed-body", "Malformed request body"
	case errors.Is(err, auth.ErrUnauthenticated):
		return http.StatusUnauthorized, "unauthenticated", "Authentication required"
	case errors.Is(err, approval.ErrInvalid):
		return http.StatusUnprocessableEntity, "invalid-review", "The review is not valid"
	case errors.Is(err, approval.ErrSeparationOfDuties):
		return http.StatusForbidden, "separation-of-duties", "Separation of duties forbids this reviewer"
	case errors.Is(err, approval.ErrNotReviewer):
		return http.StatusForbidden, "not-a-reviewer", "Not a reviewer of this request"
	case errors.Is(err, approval.ErrNotFound):
		return http.StatusNotFound, "not-found", "No such request"
	case errors.Is(err, approval.ErrNotPending):
		return http.StatusConflict, "not-pending", "The request no longer awaits this review"
	case errors.Is(err, approval.ErrStaleDigest):
		return http.StatusConflict, "stale-digest", "The request changed since it was reviewed"
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
	httpjson.WriteProblem(w, r, p)
}
