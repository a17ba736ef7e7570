// Package httpapi is intake's HTTP edge: POST /v1/requests, POST /v1/request-batches (several
// entitlements at once), POST /v1/requests/{id}/withdraw, and
// GET /v1/requests/{id} (the request folded from its own stream, so a submitter reads their own write
// until the read side answers it).
package httpapi

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/grantline/grantline/pkg/auth"
	"github.com/grantline/grantline/pkg/catalogue"
	"github.com/grantline/grantline/pkg/dependency"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/eventstore"
	"github.com/grantline/grantline/pkg/httpjson"
	"github.com/grantline/grantline/pkg/idempotency"
	"github.com/grantline/grantline/pkg/telemetry"
	"github.com/grantline/grantline/pkg/visibility"
	"github.com/grantline/grantline/services/intake"
	"github.com/grantline/grantline/services/intake/throttle"
)

// MaxBody bounds a request body; a submission is a few hundred bytes.
const MaxBody = 64 << 10

// Authenticator turns a request's bearer token into the caller's verified identity.
type Authenticator interface {
	Authenticate(r *http.Request) (auth.Identity, error)
}

// Handler serves intake's HTTP API.
type Handler struct {
	Store       *eventstore.Store
	Catalogue   *catalogue.Catalogue
	Auth        Authenticator
	Idempotency *idempotency.Keys
	Now         func() time.Time
	Log         *slog.Logger
	// Readers are groups that may read every request (auditors, security).
	Readers []string
	// Submissions limits how fast each requester submits; nil limits nothing.
	Submissions *throttle.Limiter
}

// Routes registers the API on mux: the routes api/openapi.yaml documents for this service (the
// contract test holds the two equal).
func (h *Handler) Routes(mux httpjson.Mux) {
	mux.HandleFunc("POST /v1/requests", h.submit)
	mux.HandleFunc("POST /v1/request-batches", h.submitBatch)
	mux.HandleFunc("POST /v1/requests/{id}/withdraw", h.withdraw)
	mux.HandleFunc("GET /v1/requests/{id}", h.show)
}

// Created is the answer to a submission.
type Created struct {
	ID     string        `json:"id"`
	Status events.Status `json:"status"`
}

// refuse answers r with err's problem. Everything intake does for a call needs no dependency but the
// broker, so a call of its that timed out is NATS not answering (dependency.OfBroker): a 503 naming it,
// not a 500, when the streams have lost their quorum.
func refuse(w http.ResponseWriter, r *http.Request, log *slog.Logger, op string, err error) {
	problems.Refuse(w, r, log, op, dependency.OfBroker(r.Context(), err))
}

func (h *Handler) submit(w http.ResponseWriter, r *http.Request) {
	id, status, err := h.handleSubmit(r)
	log := h.Log.With(telemetry.KeyRequestID, id)
	if err != nil {
		refuse(w, r, log, "submit", err)
		return
	}
	log.Info("submitted", "status", status, telemetry.KeyTraceID, telemetry.TraceID(r.Context()))
	w.Header().Set("Location", "/v1/requests/"+id)
	httpjson.Write(w, http.StatusAccepted, Created{ID: id, Status: status})
}

func (h *Handler) handleSubmit(r *http.Request) (string, events.Status, error) {
	who, err := h.Auth.Authenticate(r)
	if err != nil {
		return "", "", err
	}
	// Before any work on the body: a flood costs a token lookup each, nothing more.
	if err := h.Submissions.Allow("requester:" + who.Subject); err != nil {
		return "", "", err
	}
	var body intake.Body
	if err := decodeBody(r, &body); err != nil {
		return "", "", err
	}
	now := h.Now()
	sub, err := intake.Validate(body, intake.Requester{ID: who.Subject, Groups: who.Groups}, "http", h.Catalogue, now)
	if err != nil {
		return "", "", err
	}
	if sub, err = intake.ExtendFromStore(r.Context(), h.Store, body.Extends, sub, h.Catalogue, now); err != nil {
		return "", "", err
	}
	id, causation := events.NewID(), ""
	key, err := idempotency.FromHeader(r)
	if err != nil {
		return "", "", err
	}
	if key != "" {
		if id, err = h.Idempotency.Claim(r.Context(), "requester:"+who.Subject, key, sub.RequestDigest); err != nil {
			return "", "", err
		}
		causation = "http:" + key
	}
	status, err := h.create(r.Context(), id, events.Draft{Payload: sub, Actor: who.Subject, CausationID: causation})
	return id, status, err
}

// create appends the submitted event d as request id and returns the request's status. A minted ID
// holds nothing yet, so no read: a retry whose first attempt landed is caught by the compare-and-set,
// which reloads, and finds the request already there.
func (h *Handler) create(ctx context.Context, id string, d events.Draft) (events.Status, error) {
	l, err := h.Store.Create(ctx, id, func(req *events.Request) ([]events.Draft, error) {
		if req.Status() != events.StatusNone {
			return nil, nil
		}
		return []events.Draft{d}, nil
	})
	if err != nil {
		return "", err
	}
	return l.Request.Status(), nil
}

// BatchItem is one request of a batch: its ID, entitlement and status.
type BatchItem struct {
	ID          string        `json:"id"`
	Entitlement string        `json:"entitlement"`
	Status      events.Status `json:"status"`
}

// Batch is the answer to a submission for several entitlements: the correlation ID linking the
// requests, and each request in the order the entitlements were listed.
type Batch struct {
	CorrelationID string      `json:"correlation_id"`
	Requests      []BatchItem `json:"requests"`
}

func (h *Handler) submitBatch(w http.ResponseWriter, r *http.Request) {
	b, err := h.handleBatch(r)
	log := h.Log.With("correlation_id", b.CorrelationID)
	if err != nil {
		refuse(w, r, log, "submit batch", err)
		return
	}
	log.Info("submitted batch", "requests", len(b.Requests), telemetry.KeyTraceID, telemetry.TraceID(r.Context()))
	httpjson.Write(w, http.StatusAccepted, b)
}

// handleBatch validates every entitlement before creating anything, so a refused batch creates no
// request. With an Idempotency-Key the correlation ID is claimed for the whole batch and each request
// ID under it, so a retry (also one after a failure part-way) answers, and completes, the same
// requests; without one, a retry is a new batch.
func (h *Handler) handleBatch(r *http.Request) (Batch, error) {
	who, err := h.Auth.Authenticate(r)
	if err != nil {
		return Batch{}, err
	}
	// The submission limit, before any work on the body. A batch takes one submission: it makes at
	// most intake.MaxBatch requests, so a flood of batches is stopped as one of single requests is.
	if err := h.Submissions.Allow("requester:" + who.Subject); err != nil {
		return Batch{}, err
	}
	var body intake.BatchBody
	if err := decodeBody(r, &body); err != nil {
		return Batch{}, err
	}
	subs, err := intake.ValidateBatch(body, intake.Requester{ID: who.Subject, Groups: who.Groups}, "http", h.Catalogue, h.Now())
	if err != nil {
		return Batch{}, err
	}
	key, err := idempotency.FromHeader(r)
	if err != nil {
		return Batch{}, err
	}
	b := Batch{CorrelationID: events.NewID()}
	if key != "" {
		if b.CorrelationID, err = h.Idempotency.Claim(r.Context(), "requester-batch:"+who.Subject, key, intake.BatchDigest(subs)); err != nil {
			return Batch{}, err
		}
	}
	for _, sub := range subs {
		sub.CorrelationID = b.CorrelationID
		id, causation := events.NewID(), ""
		if key != "" {
			if id, err = h.Idempotency.Claim(r.Context(), "batch:"+b.CorrelationID, sub.Entitlement, sub.RequestDigest); err != nil {
				return b, err
			}
			causation = "http:" + key + "#" + sub.Entitlement
		}
		status, err := h.create(r.Context(), id, events.Draft{Payload: sub, Actor: who.Subject, CausationID: causation, CorrelationID: b.CorrelationID})
		if err != nil {
			return b, err
		}
		b.Requests = append(b.Requests, BatchItem{ID: id, Entitlement: sub.Entitlement, Status: status})
	}
	return b, nil
}

// WithdrawBody optionally says why.
type WithdrawBody struct {
	Reason string `json:"reason,omitempty"`
}

func (h *Handler) withdraw(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	status, err := h.handleWithdraw(r, id)
	log := h.Log.With(telemetry.KeyRequestID, id)
	if err != nil {
		refuse(w, r, log, "withdraw", err)
		return
	}
	log.Info("withdrawn")
	httpjson.Write(w, http.StatusAccepted, Created{ID: id, Status: status})
}

func (h *Handler) handleWithdraw(r *http.Request, id string) (events.Status, error) {
	who, err := h.Auth.Authenticate(r)
	if err != nil {
		return "", err
	}
	if !events.ValidRequestID(id) {
		return "", httpjson.ErrNotFound
	}
	var body WithdrawBody
	if r.ContentLength != 0 {
		if err := decodeBody(r, &body); err != nil {
			return "", err
		}
	}
	l, err := h.Store.Update(r.Context(), id, func(req *events.Request) ([]events.Draft, error) {
		if err := h.visible(who, req); err != nil {
			return nil, err
		}
		switch {
		case req.Submitted().Requester.ID != who.Subject:
			return nil, fmt.Errorf("%w: only the requester may withdraw a request", httpjson.ErrForbidden)
		case req.Status() == events.StatusWithdrawn:
			return nil, nil
		}
		return []events.Draft{{Payload: events.Withdrawn{Reason: body.Reason}, Actor: who.Subject}}, nil
	})
	if err != nil {
		return "", err
	}
	return l.Request.Status(), nil
}

func (h *Handler) show(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	view, err := h.handleShow(r, id)
	if err != nil {
		refuse(w, r, h.Log.With(telemetry.KeyRequestID, id), "show", err)
		return
	}
	httpjson.Write(w, http.StatusOK, view)
}

func (h *Handler) handleShow(r *http.Request, id string) (View, error) {
	who, err := h.Auth.Authenticate(r)
	if err != nil {
		return View{}, err
	}
	if !events.ValidRequestID(id) {
		return View{}, httpjson.ErrNotFound
	}
	l, err := h.Store.Load(r.Context(), id)
	if err != nil {
		return View{}, err
	}
	if err := h.visible(who, l.Request); err != nil {
		return View{}, err
	}
	if l.Request.Status() == events.StatusFinding {
		// Drift no request explains, under an ID of its own, is not a request: the read side lists it
		// (GET /v1/findings).
		return View{}, visibility.ErrNotFound
	}
	return NewView(l), nil
}

// visible is visibility.Check for the caller, with the readers groups seeing every request: a
// request the caller may not see is answered as one that does not exist.
func (h *Handler) visible(who auth.Identity, req *events.Request) error {
	ent, _ := h.Catalogue.Entitlement(req.Submitted().Entitlement)
	return visibility.Check(req, visibility.NewViewer(who.Subject, who.Groups, h.Readers), ent.OwnerGroups)
}
