package fulfilment

import (
	"time"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/manualtask"
)

// TaskSpec is what a new manual task says: who may do it, what to do, and by when.
type TaskSpec struct {
	FulfillerGroups []string
	Instructions    string
	DueAt           time.Time
	// ContinuedBy is the granted extension that continues a revoke task's access (events.TaskOpened).
	ContinuedBy string
}

// DecideOpenTask returns the decision that opens r's task of purpose if r needs one now: a grant task
// for an allowed, ungranted manual request; a revoke task for a manual grant whose revocation is due.
// It appends nothing if the task is open already or not needed.
func DecideOpenTask(purpose events.TaskPurpose, spec TaskSpec) func(*events.Request) ([]events.Draft, error) {
	return func(r *events.Request) ([]events.Draft, error) {
		switch {
		case manualtask.Opened(r, purpose):
			return nil, nil
		case purpose == events.TaskGrant && !(r.AllowsFulfilment() && r.Grant() == nil):
			return nil, nil
		case purpose == events.TaskRevoke && !(r.Status() == events.StatusGranted && r.RevocationDue() != ""):
			return nil, nil
		}
		return []events.Draft{{Payload: events.TaskOpened{
			TaskID: manualtask.ID(r.ID(), purpose), Purpose: purpose, FulfillerGroups: spec.FulfillerGroups,
			Instructions: spec.Instructions, DueAt: spec.DueAt, ContinuedBy: spec.ContinuedBy,
		}, Actor: Fulfiller, CausationID: "task:" + string(purpose)}}, nil
	}
}

// DecideCompleteGrant returns the decision that records a completed grant task: granted, with the
// person as fulfiller, the evidence as what was observed, and expires_at from the effective duration at
// now. The same person's retry of a completion that landed appends nothing; a task that is no longer
// open or a person who may not complete it is refused.
func DecideCompleteGrant(c manualtask.Completion, now time.Time) func(*events.Request) ([]events.Draft, error) {
	return func(r *events.Request) ([]events.Draft, error) {
		if r.HasCaused(events.TypeGranted, "task:"+c.TaskID) && r.Grant().Fulfiller == c.Person {
			return nil, nil // the same person's retry of a completion that landed
		}
		t, err := manualtask.Check(r, events.TaskGrant, c)
		if err != nil {
			return nil, err
		}
		return []events.Draft{{Payload: events.Granted{
			Connector: Manual, TargetRef: r.Submitted().Entitlement,
			Observed:  events.Observed{Present: true, Detail: map[string]string{"evidence": c.Evidence, "completed_by": c.Person}},
			ExpiresAt: ExpiresAt(r, now), Fulfiller: c.Person, TaskID: t.TaskID,
		}, Actor: c.Person, CausationID: "task:" + c.TaskID}}, nil
	}
}
