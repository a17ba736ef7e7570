// Package httpapi is fulfilment's HTTP edge: the manual task list (GET /v1/tasks), completing a grant
// task with evidence (POST /v1/tasks/{id}/complete), and the one-time retrieval of an issued credential
// (GET /v1/requests/{id}/credential).
//
// The list holds revoke tasks too, which fulfilment opens but the revoker completes (it alone may sign
// revoked): each listed task carries the path that completes it, so a client completes either kind
// without knowing which service owns it.
package httpapi

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/grantline/grantline/pkg/auth"
	"github.com/grantline/grantline/pkg/catalogue"
	"github.com/grantline/grantline/pkg/credential"
	"github.com/grantline/grantline/pkg/deadletter"
	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/eventstore"
	"github.com/grantline/grantline/pkg/httpjson"
	"github.com/grantline/grantline/pkg/manualtask"
	"github.com/grantline/grantline/pkg/telemetry"
	"github.com/grantline/grantline/pkg/visibility"
	"github.com/grantline/grantline/services/fulfilment"
	"github.com/grantline/grantline/services/fulfilment/taskindex"
)

// MaxBody bounds a request body; evidence is at most 4 KiB.
const MaxBody = 16 << 10

// Authenticator turns a request's bearer token into the caller's verified identity.
type Authenticator interface {
	Authenticate(r *http.Request) (auth.Identity, error)
}

// Handler serves fulfilment's HTTP API.
type Handler struct {
	Store       *eventstore.Store
	Catalogue   *catalogue.Catalogue
	Tasks       *taskindex.Index
	Credentials *credential.Store
	Auth        Authenticator
	Now         func() time.Time
	Log         *slog.Logger
}

// Routes registers the API on mux: the routes api/openapi.yaml documents for this service (the
// contract test holds the two equal).
func (h *Handler) Routes(mux httpjson.Mux) {
	mux.HandleFunc("GET /v1/tasks", h.list)
	mux.HandleFunc("POST /v1/tasks/{id}/complete", h.complete)
	mux.HandleFunc("GET /v1/requests/{id}/credential", h.credential)
}

// TaskView is one task in the list, with whether the caller may complete it and where.
type TaskView struct {
	taskindex.Task
	MayComplete bool   `json:"may_complete"`
	Why         string `json:"why,omitempty"`
	// CompleteURL is the path that completes the task (completePath).
	CompleteURL string `json:"complete_url"`
}

// completePath is where task taskID of purpose is completed: a grant task here, a revoke task at the
// revoker (POST /v1/revoke-tasks/{id}/complete), each by the service that alone may sign the outcome.
func completePath(taskID string, purpose events.TaskPurpose) string {
	if purpose == events.TaskRevoke {
		return "/v1/revoke-tasks/" + taskID + "/complete"
	}
	return "/v1/tasks/" + taskID + "/complete"
}

// TaskList is the answer to GET /v1/tasks.
type TaskList struct {
	Tasks []TaskView `json:"tasks"`
}

func (h *Handler) list(w http.ResponseWriter, r *http.Request) {
	list, err := h.handleList(r)
	if err != nil {
		problems.Refuse(w, r, h.Log, "list tasks", err)
		return
	}
	httpjson.Write(w, http.StatusOK, list)
}

// handleList lists the candidate tasks for the caller's groups, keeping those the request's stream
// says are open; candidates that are not open any more leave the index.
func (h *Handler) handleList(r *http.Request) (TaskList, error) {
	who, err := h.Auth.Authenticate(r)
	if err != nil {
		return TaskList{}, err
	}
	candidates, err := h.Tasks.For(r.Context(), who.Groups)
	if err != nil {
		return TaskList{}, err
	}
	list := TaskList{Tasks: []TaskView{}}
	for _, c := range candidates {
		l, err := h.Store.Load(r.Context(), c.RequestID)
		if deadletter.Permanent(err) {
			// A request whose stream fails verification is not worked on; the consumers report it.
			h.Log.Error("task list: request fails verification", telemetry.KeyRequestID, c.RequestID, telemetry.KeyError, err.Error())
			continue
		}
		if err != nil {
			return TaskList{}, err
		}
		t, open := manualtask.Outstanding(l.Request, c.Purpose)
		if !open || t.TaskID != c.ID {
			// Fulfilment indexes a task just before it appends task_opened, so a candidate may not be
			// open *yet*; only one whose request can no longer open it has outlived its task.
			if outlived(l.Request, c.Purpose, open) {
				_ = h.Tasks.Remove(r.Context(), c.ID)
			}
			continue
		}
		v := TaskView{Task: c, MayComplete: true, CompleteURL: completePath(c.ID, c.Purpose)}
		if err := manualtask.MayComplete(l.Request, t, who.Subject, who.Groups); err != nil {
			v.MayComplete, v.Why = false, err.Error()
		}
		list.Tasks = append(list.Tasks, v)
	}
	return list, nil
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

func (h *Handler) complete(w http.ResponseWriter, r *http.Request) {
	taskID := r.PathValue("id")
	done, err := h.handleComplete(r, taskID)
	log := h.Log.With(telemetry.KeyRequestID, done.RequestID, "task_id", taskID)
	if err != nil {
		problems.Refuse(w, r, log, "complete task", err)
		return
	}
	log.Info("task completed", "status", done.Status)
	httpjson.Write(w, http.StatusOK, done)
}

func (h *Handler) handleComplete(r *http.Request, taskID string) (Completed, error) {
	who, err := h.Auth.Authenticate(r)
	if err != nil {
		return Completed{}, err
	}
	id, purpose, ok := manualtask.ParseID(taskID)
	switch {
	case !ok:
		return Completed{}, fmt.Errorf("%w: %q is not a task ID", manualtask.ErrNotOpen, taskID)
	case purpose != events.TaskGrant:
		return Completed{RequestID: id}, fmt.Errorf("%w: %s is completed at %s", manualtask.ErrNotOpen, taskID, completePath(taskID, purpose))
	}
	var body CompleteBody
	if err := httpjson.Decode(r, &body, MaxBody); err != nil {
		return Completed{RequestID: id}, err
	}
	c := manualtask.Completion{TaskID: taskID, Person: who.Subject, Groups: who.Groups, Evidence: body.Evidence}
	decide := fulfilment.DecideCompleteGrant(c, h.Now())
	l, err := h.Store.Update(r.Context(), id, func(req *events.Request) ([]events.Draft, error) {
		ent, _ := h.Catalogue.Entitlement(req.Submitted().Entitlement)
		sees := visibility.Check(req, visibility.NewViewer(who.Subject, who.Groups, nil), ent.OwnerGroups) == nil
		if err := manualtask.Visible(req, events.TaskGrant, taskID, who.Groups, sees); err != nil {
			return nil, err
		}
		return decide(req)
	})
	if err != nil {
		return Completed{RequestID: id}, err
	}
	if err := h.Tasks.Remove(r.Context(), taskID); err != nil {
		h.Log.Warn("task done but still indexed; the list drops it", "task_id", taskID, telemetry.KeyError, err.Error())
	}
	return Completed{TaskID: taskID, RequestID: id, Status: l.Request.Status()}, nil
}

// Credential is the one-time answer to GET /v1/requests/{id}/credential.
type Credential struct {
	RequestID string    `json:"request_id"`
	Username  string    `json:"username,omitempty"`
	Password  string    `json:"password"`
	ExpiresAt time.Time `json:"expires_at"`
}

func (h *Handler) credential(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	cred, who, err := h.handleCredential(r, id)
	log := h.Log.With(telemetry.KeyRequestID, id)
	if err != nil {
		problems.Refuse(w, r, log, "retrieve credential", err)
		return
	}
	// Logged without the secret, of course: who took it, and when.
	log.Info("credential retrieved", "by", who)
	w.Header().Set("Cache-Control", "no-store")
	httpjson.Write(w, http.StatusOK, cred)
}

// handleCredential hands out the secret of request id's credential once: to the requester or a member
// of the service account's owning team, while the grant is live. The secret is deleted as it is read.
func (h *Handler) handleCredential(r *http.Request, id string) (Credential, string, error) {
	who, err := h.Auth.Authenticate(r)
	if err != nil {
		return Credential{}, "", err
	}
	if !events.ValidRequestID(id) {
		return Credential{}, who.Subject, httpjson.ErrNotFound
	}
	l, err := h.Store.Load(r.Context(), id)
	if err != nil {
		return Credential{}, who.Subject, err
	}
	req := l.Request
	s := req.Submitted()
	// No group sees every request here: a credential is for its holders, never for auditors.
	ent, _ := h.Catalogue.Entitlement(s.Entitlement)
	if err := visibility.Check(req, visibility.NewViewer(who.Subject, who.Groups, nil), ent.OwnerGroups); err != nil {
		return Credential{}, who.Subject, err
	}
	if who.Subject != s.Requester.ID && (s.Subject.Owner == "" || !slices.Contains(who.Groups, s.Subject.Owner)) {
		return Credential{}, who.Subject, fmt.Errorf("%w: only the requester or the owners of %s retrieve its credential", httpjson.ErrForbidden, s.Subject.ID)
	}
	g := req.Grant()
	switch {
	case g == nil && req.Status().Terminal():
		return Credential{}, who.Subject, fmt.Errorf("%w: the request ended without a grant", errNoCredential)
	case g == nil:
		return Credential{}, who.Subject, errNotYet
	case g.CredentialFingerprint == "":
		return Credential{}, who.Subject, fmt.Errorf("%w: this grant issued no credential", errNoCredential)
	case req.Status() != events.StatusGranted || req.RevocationDue() != "" || !h.Now().Before(g.ExpiresAt):
		_ = h.Credentials.Discard(r.Context(), id)
		return Credential{}, who.Subject, fmt.Errorf("%w: the grant has ended", credential.ErrGone)
	}
	secret, err := h.Credentials.Take(r.Context(), id)
	if err != nil {
		return Credential{}, who.Subject, err
	}
	if fulfilment.Fingerprint(secret) != g.CredentialFingerprint {
		// The stored secret is not the one the grant recorded: never hand out something unaccounted for.
		return Credential{}, who.Subject, errors.New("stored credential does not match the recorded fingerprint")
	}
	return Credential{RequestID: id, Username: g.Observed.Detail["login_role"], Password: secret, ExpiresAt: g.ExpiresAt}, who.Subject, nil
}

// outlived reports whether an index entry for a task of purpose is stale: another task of that purpose
// is open, or the request has moved past the point where such a task is opened (a grant task once the
// request is no longer approved, a revoke task once it is no longer granted with a revocation due).
func outlived(r *events.Request, purpose events.TaskPurpose, anotherOpen bool) bool {
	switch {
	case r.Version() == 0:
		return false
	case anotherOpen:
		return true
	case purpose == events.TaskGrant:
		return r.Status() != events.StatusApproved
	default:
		return r.Status() != events.StatusGranted || r.RevocationDue() == ""
	}
}
