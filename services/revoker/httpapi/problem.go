package httpapi

import (
	"errors"
	"net/http"

	"github.com/grantline/grantline/pkg/httpjson"
	"github.com/grantline/grantline/pkg/idempotency"
	"github.com/grantline/grantline/pkg/manualtask"
	"github.com/grantline/grantline/services/revoker"
)

// errInvalid is an early revocation without a usable reason.
var errInvalid = errors.New("invalid request")

// problems is the revoker's table from errors to problems: its own rows; httpjson adds the shared ones.
// A revoke task's completion is refused with the same types as a grant task's at fulfilment.
var problems = httpjson.NewTable(
	httpjson.Row{Status: http.StatusUnprocessableEntity, Slug: "invalid-request", Title: "The request is not valid", Errs: []error{errInvalid}},
	httpjson.Row{Status: http.StatusUnprocessableEntity, Slug: "invalid-completion", Title: "The completion is not valid", Errs: []error{manualtask.ErrInvalidCompletion}},
	httpjson.Forbidden.For(revoker.ErrForbidden, manualtask.ErrNotFulfiller, revoker.ErrNotLockAdmin),
	httpjson.Row{Status: http.StatusForbidden, Slug: "separation-of-duties", Title: "Nobody places or removes a lock on themselves", Errs: []error{revoker.ErrOwnLock}},
	httpjson.Row{Status: http.StatusUnprocessableEntity, Slug: "invalid-lock", Title: "The lock is not valid", Errs: []error{revoker.ErrInvalidLock}},
	idempotency.Reused,
	httpjson.Row{Status: http.StatusNotFound, Slug: "no-such-lock", Title: "No such lock", Errs: []error{revoker.ErrNoLock}},
	httpjson.Row{Status: http.StatusNotFound, Slug: "no-open-task", Title: "No such open task", Errs: []error{manualtask.ErrNotOpen}},
	httpjson.Row{Status: http.StatusConflict, Slug: "not-granted", Title: "The request holds no grant to revoke", Errs: []error{revoker.ErrNotGranted}},
)
