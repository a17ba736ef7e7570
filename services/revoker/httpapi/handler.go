// Package httpapi is the revoker's HTTP edge: early revocation (POST /v1/requests/{id}/revoke), the
// completion of manual revoke tasks (POST /v1/revoke-tasks/{id}/complete) and locks (POST and GET
// /v1/locks, POST /v1/locks/{id}/remove): the revoker alone may sign revoked and the lock events, so it
// owns those routes, as fulfilment owns the completion of grant tasks. Fulfilment opens
// both kinds and lists them in GET /v1/tasks, each with the path that completes it.
package httpapi

import (
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/grantline/grantline/pkg/auth"
	"github.com/grantline/grantline/pkg/catalogue"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/eventstore"
	"github.com/grantline/grantline/pkg/httpjson"
	"github.com/grantline/grantline/pkg/idempotency"
	"github.com/grantline/grantline/pkg/manualtask"
	"github.com/grantline/grantline/pkg/telemetry"
	"github.com/grantline/grantline/pkg/visibility"
	"github.com/grantline/grantline/services/revoker"
)

// MaxBody bounds a request body.
const MaxBody = 16 << 10

// Authenticator turns a request's bearer token into the caller's verified identity.
type Authenticator interface {
	Authenticate(r *http.Request) (auth.Identity, error)
}

// Handler serves the revoker's HTTP API.
type Handler struct {
	Store     *eventstore.Store
	Catalogue *catalogue.Catalogue
	Auth      Authenticator
	// AdminGroups may revoke any grant.
	AdminGroups []string
	// LockAdminGroups place, list and remove locks.
	LockAdminGroups []string
	// LockKeys turns retries of POST /v1/locks with one Idempotency-Key into one lock.
	LockKeys *idempotency.Keys
	// JS lists the locks (their lock_placed subjects).
	JS jetstream.JetStream
	// Now is the clock; defaults to time.Now.
	Now func() time.Time
	Log *slog.Logger
}

// Routes registers the API on mux: the routes api/openapi.yaml documents for this service (the
// contract test holds the two equal).
func (h *Handler) Routes(mux httpjson.Mux) {
	mux.HandleFunc("POST /v1/requests/{id}/revoke", h.revoke)
	mux.HandleFunc("POST /v1/revoke-tasks/{id}/complete", h.completeTask)
	mux.HandleFunc("POST /v1/locks", h.placeLock)
	mux.HandleFunc("GET /v1/locks", h.listLocks)
	mux.HandleFunc("POST /v1/locks/{id}/remove", h.removeLock)
}

// RevokeBody says why access should end now.
type RevokeBody struct {
	Reason string `json:"reason"`
}

// Accepted answers an early revocation: the revoker revokes asynchronously.
type Accepted struct {
	ID         string                  `json:"id"`
	Status     events.Status           `json:"status"`
	Revocation events.RevocationReason `json:"revocation,omitempty"`
}

func (h *Handler) revoke(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	acc, err := h.handleRevoke(r, id)
	log := h.Log.With(telemetry.KeyRequestID, id)
	if err != nil {
		problems.Refuse(w, r, log, "revoke", err)
		return
	}
	log.Info("revocation requested", "status", acc.Status)
	w.Header().Set("Location", "/v1/requests/"+id)
	httpjson.Write(w, http.StatusAccepted, acc)
}

func (h *Handler) handleRevoke(r *http.Request, id string) (Accepted, error) {
	who, err := h.Auth.Authenticate(r)
	if err != nil {
		return Accepted{}, err
	}
	if !events.ValidRequestID(id) {
		return Accepted{}, httpjson.ErrNotFound
	}
	var body RevokeBody
	if err := httpjson.Decode(r, &body, MaxBody); err != nil {
		return Accepted{}, err
	}
	if body.Reason == "" || len(body.Reason) > 1024 {
		return Accepted{}, fmt.Errorf("%w: a reason of 1 to 1024 bytes is required", errInvalid)
	}
	caller := revoker.Caller{ID: who.Subject, Groups: who.Groups}
	l, err := h.Store.Update(r.Context(), id, func(req *events.Request) ([]events.Draft, error) {
		ent, _ := h.Catalogue.Entitlement(req.Submitted().Entitlement)
		// Before anything that depends on the state: to a caller who may not see the request, it does
		// not exist. The administrators, who may revoke any grant, see every request.
		if err := visibility.Check(req, visibility.NewViewer(who.Subject, who.Groups, h.AdminGroups), ent.OwnerGroups); err != nil {
			return nil, err
		}
		return revoker.DecideRequest(caller, body.Reason, ent.OwnerGroups, h.AdminGroups)(req)
	})
	if err != nil {
		return Accepted{}, err
	}
	return Accepted{ID: id, Status: l.Request.Status(), Revocation: l.Request.RevocationDue()}, nil
}

// CompleteBody is what a person reports: what they did.
type CompleteBody struct {
	Evidence string `json:"evidence"`
}

// Completed answers a completion.
type Completed struct {
	TaskID    string        `json:"task_id"`
	RequestID string        `json:"request_id"`
	Status    events.Status `json:"status"`
}

func (h *Handler) completeTask(w http.ResponseWriter, r *http.Request) {
	taskID := r.PathValue("id")
	done, err := h.handleComplete(r, taskID)
	log := h.Log.With(telemetry.KeyRequestID, done.RequestID, "task_id", taskID)
	if err != nil {
		problems.Refuse(w, r, log, "complete revoke task", err)
		return
	}
	log.Info("revoke task completed", "status", done.Status)
	httpjson.Write(w, http.StatusOK, done)
}

// handleComplete records the caller's completion of revoke task taskID: revoked, observed absent with
// their evidence (revoker.DecideCompleteRevoke), or why not.
func (h *Handler) handleComplete(r *http.Request, taskID string) (Completed, error) {
	who, err := h.Auth.Authenticate(r)
	if err != nil {
		return Completed{}, err
	}
	id, purpose, ok := manualtask.ParseID(taskID)
	if !ok || purpose != events.TaskRevoke {
		return Completed{}, fmt.Errorf("%w: %q is not a revoke task", manualtask.ErrNotOpen, taskID)
	}
	var body CompleteBody
	if err := httpjson.Decode(r, &body, MaxBody); err != nil {
		return Completed{RequestID: id}, err
	}
	c := manualtask.Completion{TaskID: taskID, Person: who.Subject, Groups: who.Groups, Evidence: body.Evidence}
	decide := revoker.DecideCompleteRevoke(c)
	l, err := h.Store.Update(r.Context(), id, func(req *events.Request) ([]events.Draft, error) {
		ent, _ := h.Catalogue.Entitlement(req.Submitted().Entitlement)
		sees := visibility.Check(req, visibility.NewViewer(who.Subject, who.Groups, h.AdminGroups), ent.OwnerGroups) == nil
		if err := manualtask.Visible(req, events.TaskRevoke, taskID, who.Groups, sees); err != nil {
			return nil, err
		}
		return decide(req)
	})
	if err != nil {
		return Completed{RequestID: id}, err
	}
	return Completed{TaskID: taskID, RequestID: id, Status: l.Request.Status()}, nil
}
