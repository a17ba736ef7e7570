// Package httpapi is the read side's HTTP edge: the request list with its filters and paging, a
// request's stored CloudEvents with their verification, grants, who held an entitlement at an
// instant, and the findings of access no request explains. GET /v1/requests/{id} stays with intake, which folds the request's own stream so a submitter
// reads their own write.
package httpapi

import (
	"context"
	"encoding/base64"
	"encoding/json/jsontext"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/grantline/grantline/pkg/auth"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/httpjson"
	"github.com/grantline/grantline/pkg/telemetry"
	"github.com/grantline/grantline/services/query"
)

// Authenticator turns a request's bearer token into the caller's verified identity; *auth.Verifier
// implements it.
type Authenticator interface {
	Authenticate(r *http.Request) (auth.Identity, error)
}

// Store is the read side the API answers from; *postgres.Store implements it.
type Store interface {
	List(ctx context.Context, rd query.Reader, f query.Filter) ([]query.View, string, error)
	Grants(ctx context.Context, rd query.Reader, f query.GrantFilter) ([]query.Grant, string, error)
	HeldAt(ctx context.Context, rd query.Reader, entitlement string, at, now time.Time) ([]query.Holding, error)
	Findings(ctx context.Context, rd query.Reader, f query.FindingFilter) ([]query.Finding, string, error)
}

// Stream reads a request's stored events; *natsjs.Reader implements it.
type Stream interface {
	Records(ctx context.Context, id string, atLeast uint64) ([]events.Record, error)
}

// Paging limits.
const (
	DefaultLimit = 50
	MaxLimit     = 500
)

// Handler serves the query API.
type Handler struct {
	Store    Store
	Stream   Stream
	Verifier *events.Verifier
	Auth     Authenticator
	// AuditorGroups may read everything.
	AuditorGroups []string
	// OwnerGroups maps each entitlement to its owner groups (from the catalogue): owners read the
	// requests for their entitlements.
	OwnerGroups map[string][]string
	Now         func() time.Time
	Log         *slog.Logger
}

// Routes registers the API on mux: the routes api/openapi.yaml documents for this service (the
// contract test holds the two equal).
func (h *Handler) Routes(mux httpjson.Mux) {
	mux.HandleFunc("GET /v1/requests", h.list)
	mux.HandleFunc("GET /v1/requests/{id}/events", h.events)
	mux.HandleFunc("GET /v1/grants", h.grants)
	mux.HandleFunc("GET /v1/audit/access", h.access)
	mux.HandleFunc("GET /v1/findings", h.findings)
}

// Page is the answer of a list: its items and, when more follow, the cursor that continues it.
type Page[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor,omitempty"`
}

func (h *Handler) list(w http.ResponseWriter, r *http.Request) {
	h.serve(w, r, "list requests", func(rd query.Reader) (any, error) {
		q := r.URL.Query()
		f := query.Filter{Status: events.Status(q.Get("status")), Entitlement: q.Get("entitlement")}
		if err := onlyParams(q, "status", "requester", "entitlement", "awaiting_review", "chain", "limit", "cursor"); err != nil {
			return nil, err
		}
		if f.Chain = q.Get("chain"); f.Chain != "" && !events.ValidRequestID(f.Chain) {
			return nil, fmt.Errorf("%w: chain takes a request ID", errBadQuery)
		}
		if f.Status != "" && !knownStatus(f.Status) {
			return nil, fmt.Errorf("%w: unknown status %q", errBadQuery, f.Status)
		}
		if who := q.Get("requester"); who != "" {
			norm, err := auth.NormalizeSubject(who)
			if err != nil {
				return nil, fmt.Errorf("%w: requester: %v", errBadQuery, err)
			}
			f.Requester = norm
		}
		switch q.Get("awaiting_review") {
		case "":
		case "me":
			f.AwaitingReview = true
		default:
			return nil, fmt.Errorf("%w: awaiting_review takes only \"me\"", errBadQuery)
		}
		var err error
		if f.Limit, f.After, err = paging(q.Get("limit"), q.Get("cursor")); err != nil {
			return nil, err
		}
		items, next, err := h.Store.List(r.Context(), rd, f)
		if err != nil {
			return nil, err
		}
		return Page[query.View]{Items: items, NextCursor: cursor(next)}, nil
	})
}

func (h *Handler) grants(w http.ResponseWriter, r *http.Request) {
	h.serve(w, r, "list grants", func(rd query.Reader) (any, error) {
		q := r.URL.Query()
		if err := onlyParams(q, "active", "holder", "entitlement", "limit", "cursor"); err != nil {
			return nil, err
		}
		f := query.GrantFilter{Entitlement: q.Get("entitlement")}
		if who := q.Get("holder"); who != "" {
			norm, err := auth.NormalizeSubject(who)
			if err != nil {
				return nil, fmt.Errorf("%w: holder: %v", errBadQuery, err)
			}
			f.Holder = norm
		}
		if a := q.Get("active"); a != "" {
			active, err := strconv.ParseBool(a)
			if err != nil {
				return nil, fmt.Errorf("%w: active takes true or false", errBadQuery)
			}
			f.Active = &active
		}
		var err error
		if f.Limit, f.After, err = paging(q.Get("limit"), q.Get("cursor")); err != nil {
			return nil, err
		}
		items, next, err := h.Store.Grants(r.Context(), rd, f)
		if err != nil {
			return nil, err
		}
		return Page[query.Grant]{Items: items, NextCursor: cursor(next)}, nil
	})
}

func (h *Handler) findings(w http.ResponseWriter, r *http.Request) {
	h.serve(w, r, "list findings", func(rd query.Reader) (any, error) {
		q := r.URL.Query()
		if err := onlyParams(q, "limit", "cursor"); err != nil {
			return nil, err
		}
		var f query.FindingFilter
		var err error
		if f.Limit, f.After, err = paging(q.Get("limit"), q.Get("cursor")); err != nil {
			return nil, err
		}
		items, next, err := h.Store.Findings(r.Context(), rd, f)
		if err != nil {
			return nil, err
		}
		return Page[query.Finding]{Items: items, NextCursor: cursor(next)}, nil
	})
}

// Access is the answer of GET /v1/audit/access: who held the entitlement at the instant.
type Access struct {
	Entitlement string          `json:"entitlement"`
	At          time.Time       `json:"at"`
	Holders     []query.Holding `json:"holders"`
}

func (h *Handler) access(w http.ResponseWriter, r *http.Request) {
	h.serve(w, r, "who held", func(rd query.Reader) (any, error) {
		q := r.URL.Query()
		if err := onlyParams(q, "entitlement", "at"); err != nil {
			return nil, err
		}
		ent := q.Get("entitlement")
		if ent == "" {
			return nil, fmt.Errorf("%w: entitlement is required", errBadQuery)
		}
		at, err := time.Parse(time.RFC3339Nano, q.Get("at"))
		if err != nil {
			return nil, fmt.Errorf("%w: at must be an RFC 3339 time", errBadQuery)
		}
		holders, err := h.Store.HeldAt(r.Context(), rd, ent, at, h.now())
		if err != nil {
			return nil, err
		}
		return Access{Entitlement: ent, At: at.UTC(), Holders: holders}, nil
	})
}

// StoredEvent is one stored CloudEvent: its stream position, the signature header, when the broker
// stored it, and the body verbatim (the bytes the signature covers). A body that is not JSON at all is
// given in base64 instead.
type StoredEvent struct {
	Seq        uint64         `json:"seq"`
	Subject    string         `json:"subject"`
	StoredAt   time.Time      `json:"stored_at"`
	Signature  string         `json:"signature"`
	Body       jsontext.Value `json:"body,omitempty"`
	BodyBase64 string         `json:"body_base64,omitempty"`
}

// Verification is the verdict on a request's stored events: verified, or the first problem.
type Verification struct {
	Verified bool   `json:"verified"`
	Kind     string `json:"kind,omitzero"`
	Position int    `json:"position,omitzero"`
	Seq      uint64 `json:"seq,omitzero"`
	EventID  string `json:"event_id,omitzero"`
	Detail   string `json:"detail,omitzero"`
}

// Events is the answer of GET /v1/requests/{id}/events.
type Events struct {
	RequestID    string        `json:"request_id"`
	Events       []StoredEvent `json:"events"`
	Verification Verification  `json:"verification"`
}

func (h *Handler) events(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	h.serve(w, r, "request events", func(rd query.Reader) (any, error) {
		if !events.ValidRequestID(id) {
			return nil, httpjson.ErrNotFound
		}
		recs, err := h.Stream.Records(r.Context(), id, 0)
		if err != nil {
			return nil, err
		}
		hist := query.Verify(h.Verifier, id, recs)
		// Visibility is judged on the verified history; a request nobody could have submitted (its
		// first event fails) is for auditors only.
		if len(recs) == 0 || !rd.Everything && (!hist.Exists() || !rd.MayRead(hist.Request)) {
			return nil, httpjson.ErrNotFound
		}
		out := Events{RequestID: id, Events: make([]StoredEvent, 0, len(recs)), Verification: Verification{Verified: true}}
		if p := hist.Problem; p != nil {
			out.Verification = Verification{Kind: p.Kind, Position: p.Position, Seq: p.Seq, EventID: p.EventID, Detail: p.Detail}
		}
		for _, rec := range recs {
			ev := StoredEvent{Seq: rec.Seq, Subject: rec.Subject, StoredAt: rec.StoredAt.UTC(), Signature: rec.Signature}
			if body := jsontext.Value(rec.Body); body.IsValid() {
				ev.Body = body
			} else {
				ev.BodyBase64 = base64.StdEncoding.EncodeToString(rec.Body)
			}
			out.Events = append(out.Events, ev)
		}
		return out, nil
	})
}

// serve authenticates the caller, runs answer for them and writes its result or the problem.
func (h *Handler) serve(w http.ResponseWriter, r *http.Request, op string, answer func(query.Reader) (any, error)) {
	log := h.Log
	if id := r.PathValue("id"); id != "" {
		log = log.With(telemetry.KeyRequestID, id)
	}
	out, err := func() (any, error) {
		who, err := h.Auth.Authenticate(r)
		if err != nil {
			return nil, err
		}
		return answer(query.NewReader(who.Subject, who.Groups, h.AuditorGroups, h.OwnerGroups))
	}()
	if err != nil {
		problems.Refuse(w, r, log, op, err)
		return
	}
	httpjson.Write(w, http.StatusOK, out)
}

func (h *Handler) now() time.Time {
	if h.Now != nil {
		return h.Now()
	}
	return time.Now()
}

// cursorPrefix versions the cursor format, which is otherwise opaque to clients.
const cursorPrefix = "v1:"

func cursor(after string) string {
	if after == "" {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString([]byte(cursorPrefix + after))
}

// paging reads limit (default DefaultLimit, at most MaxLimit) and the cursor, giving the ID to continue
// after.
func paging(limit, cur string) (int, string, error) {
	n := DefaultLimit
	if limit != "" {
		var err error
		if n, err = strconv.Atoi(limit); err != nil || n < 1 || n > MaxLimit {
			return 0, "", fmt.Errorf("%w: limit must be a number from 1 to %d", errBadQuery, MaxLimit)
		}
	}
	if cur == "" {
		return n, "", nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(cur)
	after, ok := strings.CutPrefix(string(raw), cursorPrefix)
	if err != nil || !ok || !events.ValidRequestID(after) {
		return 0, "", fmt.Errorf("%w: cursor is not one this API gave out", errBadQuery)
	}
	return n, after, nil
}

// onlyParams refuses query parameters outside allowed, and repeated ones: a misspelt filter must not
// silently widen the answer.
func onlyParams(q map[string][]string, allowed ...string) error {
	for k, vs := range q {
		known := false
		for _, a := range allowed {
			known = known || k == a
		}
		if !known {
			return fmt.Errorf("%w: unknown parameter %q", errBadQuery, k)
		}
		if len(vs) > 1 {
			return fmt.Errorf("%w: parameter %q given more than once", errBadQuery, k)
		}
	}
	return nil
}

func knownStatus(s events.Status) bool {
	switch s {
	case events.StatusSubmitted, events.StatusDenied, events.StatusPendingApproval, events.StatusApproved,
		events.StatusGranted, events.StatusRevoked, events.StatusRejected, events.StatusWithdrawn, events.StatusFailed:
		return true
	}
	return false
}

// errBadQuery is wrapped by every refusal of a query's parameters.
var errBadQuery = errors.New("invalid query")

// problems is the read side's table from errors to problems: its own rows; httpjson adds the shared
// ones. A read side behind the stream is busy like a store that is.
var problems = httpjson.NewTable(
	httpjson.Row{Status: http.StatusBadRequest, Slug: "invalid-query", Title: "Invalid query", Errs: []error{errBadQuery}},
	httpjson.Busy.For(query.ErrStale),
)
