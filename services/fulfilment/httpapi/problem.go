package httpapi

import (
	"errors"
	"net/http"

	"github.com/grantline/grantline/pkg/credential"
	"github.com/grantline/grantline/pkg/httpjson"
	"github.com/grantline/grantline/pkg/manualtask"
)

// Errors the handlers return besides the domain's own and httpjson's.
var (
	errNoCredential = errors.New("no credential")
	errNotYet       = errors.New("the request is not granted yet")
)

// problems is fulfilment's table from errors to problems: its own rows; httpjson adds the shared ones.
var problems = httpjson.NewTable(
	httpjson.Forbidden.For(manualtask.ErrNotFulfiller),
	httpjson.Row{Status: http.StatusNotFound, Slug: "no-open-task", Title: "No such open task", Errs: []error{manualtask.ErrNotOpen}},
	httpjson.Row{Status: http.StatusUnprocessableEntity, Slug: "invalid-completion", Title: "The completion is not valid", Errs: []error{manualtask.ErrInvalidCompletion}},
	httpjson.Row{Status: http.StatusNotFound, Slug: "no-credential", Title: "This request has no credential", Errs: []error{errNoCredential}},
	httpjson.Row{Status: http.StatusConflict, Slug: "not-granted", Title: "The request is not granted yet", Errs: []error{errNotYet}},
	httpjson.Row{Status: http.StatusGone, Slug: "credential-gone", Title: "The credential was already retrieved or has expired", Errs: []error{credential.ErrGone}},
)
