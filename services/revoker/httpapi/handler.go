// Package httpapi is the revoker's HTTP edge: early revocation (POST /v1/requests/{id}/revoke) and,
// where the revoker serves on its own, the completion of revoke tasks (POST /v1/tasks/{id}/complete for
// tasks ending in "-revoke").
package httpapi

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/grantline/grantline/pkg/auth"
	"github.com/grantline/grantline/pkg/catalogue"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/eventstore"
	"github.com/grantline/grantline/pkg/httpjson"
	"github.com/grantline/grantline/pkg/manualtask"
	"github.com/grantline/grantline/pkg/telemetry"
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
	Log         *slog.Logger
}

// Routes registers POST /v1/requests/{id}/revoke on mux, as api/openapi.yaml documents it.
func (h *Handler) Routes(mux httpjson.Mux) {
	mux.HandleFunc("POST /v1/requests/{id}/revoke", h.revoke)
}

// TaskRoutes registers POST /v1/tasks/{id}/complete for revoke tasks, for a revoker serving on its own
// (in one process with fulfilment, fulfilment's route hands revoke tasks to CompleteRevoke instead).
func (h *Handler) TaskRoutes(mux httpjson.Mux) {
	mux.HandleFunc("POST /v1/tasks/{id}/complete", h.completeTask)
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
		if req.Status() == events.StatusNone {
			return nil, httpjson.ErrNotFound
		}
		ent, _ := h.Catalogue.Entitlement(req.Submitted().Entitlement)
		return revoker.DecideRequest(caller, body.Reason, ent.OwnerGroups, h.AdminGroups)(req)
	})
	if err != nil {
		return Accepted{}, err
	}
	return Accepted{ID: id, Status: l.Request.Status(), Revocation: l.Request.RevocationDue()}, nil
}

// CompleteRevoke records the completion of request id's revoke task by c.Person: revoked, observed
// absent with the evidence. It returns the request's status after, or why not (fulfilment's task
// errors).
func (h *Handler) CompleteRevoke(ctx context.Context, id string, c manualtask.Completion) (events.Status, error) {
	l, err := h.Store.Update(ctx, id, revoker.DecideCompleteRevoke(c))
	if err != nil {
		return "", err
	}
	return l.Request.Status(), nil
}

// CompleteBody is what a person reports: what they did.
type CompleteBody struct {
	Evidence string `json:"evidence"`
}

func (h *Handler) completeTask(w http.ResponseWriter, r *http.Request) {
	taskID := r.PathValue("id")
	id, status, err := h.handleComplete(r, taskID)
	log := h.Log.With(telemetry.KeyRequestID, id, "task_id", taskID)
	if err != nil {
		problems.Refuse(w, r, log, "complete task", err)
		return
	}
	log.Info("revoke task completed", "status", status)
	httpjson.Write(w, http.StatusOK, map[string]any{"task_id": taskID, "request_id": id, "status": status})
}

func (h *Handler) handleComplete(r *http.Request, taskID string) (string, events.Status, error) {
	who, err := h.Auth.Authenticate(r)
	if err != nil {
		return "", "", err
	}
	id, purpose, ok := manualtask.ParseID(taskID)
	if !ok {
		return "", "", fmt.Errorf("%w: %q is not a task ID", manualtask.ErrNotOpen, taskID)
	}
	if purpose != events.TaskRevoke {
		return id, "", errMisdirected
	}
	var body CompleteBody
	if err := httpjson.Decode(r, &body, MaxBody); err != nil {
		return id, "", err
	}
	status, err := h.CompleteRevoke(r.Context(), id, manualtask.Completion{TaskID: taskID, Person: who.Subject,
		Groups: who.Groups, Evidence: body.Evidence})
	return id, status, err
}
