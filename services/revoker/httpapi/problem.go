package httpapi

import (
	"errors"
	"net/http"

	"github.com/grantline/grantline/pkg/httpjson"
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
	httpjson.Forbidden.For(revoker.ErrForbidden, manualtask.ErrNotFulfiller),
	httpjson.Row{Status: http.StatusNotFound, Slug: "no-open-task", Title: "No such open task", Errs: []error{manualtask.ErrNotOpen}},
	httpjson.Row{Status: http.StatusConflict, Slug: "not-granted", Title: "The request holds no grant to revoke", Errs: []error{revoker.ErrNotGranted}},
)
