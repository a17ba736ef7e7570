package httpjson

import (
	"context"
	"encoding/json/v2"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/grantline/grantline/pkg/auth"
	"github.com/grantline/grantline/pkg/dependency"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/eventstore"
	"github.com/grantline/grantline/pkg/telemetry"
	"github.com/grantline/grantline/pkg/visibility"
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
	// Dependency names what was unavailable (the database, NATS) on a 503 "unavailable".
	Dependency string `json:"dependency,omitempty"`
}

// FieldError says what is wrong with one field of a request body.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// Errors a handler returns where its domain has no sentinel of its own; the shared rows answer them.
var (
	// ErrNotFound is visibility.ErrNotFound itself, so that a request the caller may not see and one
	// that does not exist get the very same problem, detail included.
	ErrNotFound  = visibility.ErrNotFound
	ErrForbidden = errors.New("not allowed for this caller")
)

// Row is one row of a problem table: an error that is (errors.Is) one of Errs is answered with Status
// and the problem type ProblemTypeBase+Slug, titled Title.
type Row struct {
	Status int
	Slug   string
	Title  string
	Errs   []error
	// Warning, when set, is why a refusal by this row is logged as a warning rather than as
	// information: an attempt an operator should see (a forged body, a self-approval).
	Warning string
	// Attrs, when set, gives the refusal's log line what the error knows as key-value pairs (who was
	// refused and why), for log queries rather than parsing the message.
	Attrs func(err error) []any
}

// For is the same problem answering errs instead: a service whose domain has its own sentinel for a
// shared problem (approval's ErrNotFound) adds the shared row for it.
func (r Row) For(errs ...error) Row {
	r.Errs = errs
	return r
}

// Warn is the same row with refusals logged as warnings, saying why.
func (r Row) Warn(why string) Row {
	r.Warning = why
	return r
}

// The rows every HTTP API shares. NewTable puts them after a service's own rows, so a service's row
// for the same error wins.
var (
	TooLarge        = Row{Status: http.StatusRequestEntityTooLarge, Slug: "body-too-large", Title: "Request body too large", Errs: []error{ErrTooLarge}}
	Malformed       = Row{Status: http.StatusBadRequest, Slug: "malformed-body", Title: "Malformed request body", Errs: []error{ErrMalformed}}
	Unauthenticated = Row{Status: http.StatusUnauthorized, Slug: "unauthenticated", Title: "Authentication required", Errs: []error{auth.ErrUnauthenticated}}
	Forbidden       = Row{Status: http.StatusForbidden, Slug: "forbidden", Title: "Forbidden", Errs: []error{ErrForbidden}}
	NotFound        = Row{Status: http.StatusNotFound, Slug: "not-found", Title: "No such request", Errs: []error{ErrNotFound, eventstore.ErrNotARequest}}
	// StateConflict: the request aggregate refused the event the handler decided on.
	StateConflict = Row{Status: http.StatusConflict, Slug: "state-conflict", Title: "The request's current state does not allow this", Errs: []error{events.ErrRefused}}
	// Busy: the store kept conflicting or a replica stayed behind, so the same call will do later. A
	// call cancelled on the way (the caller left, the server is stopping) is answered the same, not as
	// 500 internal.
	Busy = Row{Status: http.StatusServiceUnavailable, Slug: "busy", Title: "The request is busy; try again",
		Errs: []error{eventstore.ErrConflict, eventstore.ErrStale, context.Canceled}}
	// Unavailable: PostgreSQL or NATS did not answer (dependency.Classify); the problem names which, and
	// the call will do once it is back.
	Unavailable = Row{Status: http.StatusServiceUnavailable, Slug: "unavailable", Title: "A service this call needs is unavailable; try again",
		Errs: []error{dependency.ErrUnavailable}}
)

// internal answers every error no row names. Its detail stays out of the answer (it is logged).
var internal = Row{Status: http.StatusInternalServerError, Slug: "internal", Title: "Internal error"}

// Table is one HTTP API's map from errors to problems: its own rows, then the shared ones, then
// 500 internal for anything else. The first row naming the error answers it.
type Table struct{ rows []Row }

// NewTable returns the table of a service's own rows followed by the shared rows.
func NewTable(own ...Row) *Table {
	return &Table{rows: slices.Concat(own, []Row{TooLarge, Malformed, Unauthenticated, Forbidden, NotFound, StateConflict, Busy, Unavailable})}
}

// Lookup returns the row answering err: the first whose errors err is, or 500 internal. An error that
// says PostgreSQL or NATS did not answer is the Unavailable row's (dependency.Classify), unless a
// service's own row names it first.
func (t *Table) Lookup(err error) Row {
	err = dependency.Classify(err)
	for _, row := range t.rows {
		for _, e := range row.Errs {
			if errors.Is(err, e) {
				return row
			}
		}
	}
	return internal
}

// Refuse answers r with err's problem and logs the refusal once, as the edge of a unit of work: a
// server-side failure (5xx) as an error ("<op> failed"), a row with a Warning as a warning, any other
// refusal as information ("<op> refused"), each with the problem, the error and the trace.
func (t *Table) Refuse(w http.ResponseWriter, r *http.Request, log *slog.Logger, op string, err error) {
	err = dependency.Classify(err)
	row := t.Lookup(err)
	log = log.With(telemetry.KeyTraceID, telemetry.TraceID(r.Context()))
	if row.Attrs != nil {
		log = log.With(row.Attrs(err)...)
	}
	switch {
	case row.Status >= http.StatusInternalServerError:
		log.Error(op+" failed", telemetry.KeyError, err.Error())
	case row.Warning != "":
		log.Warn(op+" refused: "+row.Warning, "problem", row.Slug, "path", r.URL.Path, telemetry.KeyError, err.Error())
	default:
		log.Info(op+" refused", "problem", row.Slug, telemetry.KeyError, err.Error())
	}
	writeProblem(w, r, row, err)
}

// writeProblem answers r with row's problem for err, filling in the instance and the headers its
// status calls for (WWW-Authenticate on 401, Retry-After on 429 and 503). An internal error's detail stays out
// of the answer; an error carrying field errors (FieldErrors() []FieldError) lists them.
func writeProblem(w http.ResponseWriter, r *http.Request, row Row, err error) {
	p := Problem{Type: ProblemTypeBase + row.Slug, Title: row.Title, Status: row.Status, Instance: r.URL.Path}
	if row.Status != http.StatusInternalServerError {
		p.Detail = err.Error()
	}
	var fields interface{ FieldErrors() []FieldError }
	if errors.As(err, &fields) {
		p.Errors = fields.FieldErrors()
	}
	var down *dependency.UnavailableError
	if errors.As(err, &down) {
		p.Dependency = down.Dependency
	}
	switch row.Status {
	case http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", `Bearer realm="grantline"`)
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds(err)))
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(row.Status)
	_ = json.MarshalWrite(w, p)
}

// retryAfterSeconds is when the caller should try again, in whole seconds rounded up, at least one:
// what err says (RetryAfter() time.Duration, as a rate limit's refusal does), else one second.
func retryAfterSeconds(err error) int {
	var ra interface{ RetryAfter() time.Duration }
	if !errors.As(err, &ra) {
		return 1
	}
	return max(1, int(math.Ceil(ra.RetryAfter().Seconds())))
}
