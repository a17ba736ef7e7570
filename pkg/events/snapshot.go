package events

import (
	"cmp"
	"encoding/json/v2"
	"fmt"
	"slices"
	"time"
)

// snapshot is the aggregate's state in the open, for Snapshot and RestoreRequest: every field of
// Request but its ID, which the caller keeps beside it.
type snapshot struct {
	Version          int               `json:"version"`
	Status           Status            `json:"status"`
	Submitted        Submitted         `json:"submitted"`
	Decision         PolicyDecided     `json:"decision"`
	Reviews          []Reviewed        `json:"reviews,omitempty"`
	Approvers        []string          `json:"approvers,omitempty"`
	Rejection        *Rejected         `json:"rejection,omitempty"`
	StartCheck       *StartChecked     `json:"start_check,omitempty"`
	Tasks            []TaskOpened      `json:"tasks,omitempty"`
	Grant            *Granted          `json:"grant,omitempty"`
	GrantedAt        time.Time         `json:"granted_at,omitzero"`
	Revocation       RevocationReason  `json:"revocation,omitempty"`
	RevocationFailed *RevocationFailed `json:"revocation_failed,omitempty"`
	Revoked          *Revoked          `json:"revoked,omitempty"`
	Failure          *FulfilmentFailed `json:"failure,omitempty"`
	PostReview       *PostReviewed     `json:"post_review,omitempty"`
	PostOverdue      bool              `json:"post_overdue,omitempty"`
	Drift            []DriftDetected   `json:"drift,omitempty"`
	DriftRevocation  bool              `json:"drift_revocation,omitempty"`
	AccessMissing    bool              `json:"access_missing,omitempty"`
	Causes           []snapshotCause   `json:"causes,omitempty"`
}

type snapshotCause struct {
	Type        Type   `json:"t"`
	CausationID string `json:"c"`
}

// Snapshot encodes the aggregate's state, so that a reader that must fold a request's next event
// (the read side) can keep the state instead of every event folded so far: RestoreRequest gives back
// an aggregate that accepts and refuses exactly what r does.
func (r *Request) Snapshot() ([]byte, error) {
	s := snapshot{Version: r.version, Status: r.status, Submitted: r.submitted, Decision: r.decision, Reviews: r.reviews,
		Approvers: r.approvers, Rejection: r.rejection, StartCheck: r.startCheck, Tasks: r.tasks, Grant: r.grant, GrantedAt: r.grantedAt,
		Revocation: r.revocation, RevocationFailed: r.revocationFailed, Revoked: r.revoked, Failure: r.failure,
		PostReview: r.postReview, PostOverdue: r.postOverdue, Drift: r.drift, DriftRevocation: r.driftRevocation,
		AccessMissing: r.accessMissing}
	for k := range r.causes {
		s.Causes = append(s.Causes, snapshotCause{Type: k.t, CausationID: k.causID})
	}
	slices.SortFunc(s.Causes, func(a, b snapshotCause) int {
		return cmp.Or(cmp.Compare(a.Type, b.Type), cmp.Compare(a.CausationID, b.CausationID))
	})
	return json.Marshal(s, json.Deterministic(true))
}

// RestoreRequest returns the aggregate of request id whose state Snapshot encoded as b.
func RestoreRequest(id string, b []byte) (*Request, error) {
	var s snapshot
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("restore request %s: %w", id, err)
	}
	r := &Request{id: id, version: s.Version, status: s.Status, submitted: s.Submitted, decision: s.Decision, reviews: s.Reviews,
		approvers: s.Approvers, rejection: s.Rejection, startCheck: s.StartCheck, tasks: s.Tasks, grant: s.Grant, grantedAt: s.GrantedAt,
		revocation: s.Revocation, revocationFailed: s.RevocationFailed, revoked: s.Revoked, failure: s.Failure,
		postReview: s.PostReview, postOverdue: s.PostOverdue, drift: s.Drift, driftRevocation: s.DriftRevocation,
		accessMissing: s.AccessMissing, causes: make(map[causeKey]bool, len(s.Causes))}
	for _, c := range s.Causes {
		r.causes[causeKey{t: c.Type, causID: c.CausationID}] = true
	}
	return r, nil
}
