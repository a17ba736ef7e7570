package fulfilment

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/grantline/grantline/pkg/events"
)

// Errors of task commands; the HTTP edge maps each to a problem.
var (
	// ErrTask wraps a malformed completion (no evidence, or too much).
	ErrTask = errors.New("invalid task completion")
	// ErrTaskNotOpen means there is no such task, or it was completed or became moot.
	ErrTaskNotOpen = errors.New("no such open task")
	// ErrNotFulfiller wraps why this person may not complete the task.
	ErrNotFulfiller = errors.New("not allowed to complete this task")
)

// TaskID is the ID of request requestID's task of purpose: one grant task and one revoke task at most
// per request, so opening one is idempotent and the ID says which request and purpose it is.
func TaskID(requestID string, purpose events.TaskPurpose) string {
	return requestID + "-" + string(purpose)
}

// ParseTaskID splits a task ID into its request ID and purpose, and reports false for anything else.
func ParseTaskID(taskID string) (requestID string, purpose events.TaskPurpose, ok bool) {
	id, p, found := strings.Cut(taskID, "-")
	purpose = events.TaskPurpose(p)
	if !found || !events.ValidRequestID(id) || (purpose != events.TaskGrant && purpose != events.TaskRevoke) {
		return "", "", false
	}
	return id, purpose, true
}

// OpenTask returns r's task of purpose while it is open: a grant task until the request is granted or
// closed, a revoke task until the grant is revoked.
func OpenTask(r *events.Request, purpose events.TaskPurpose) (events.TaskOpened, bool) {
	i := slices.IndexFunc(r.Tasks(), func(t events.TaskOpened) bool { return t.Purpose == purpose })
	if i < 0 {
		return events.TaskOpened{}, false
	}
	t := r.Tasks()[i]
	switch purpose {
	case events.TaskGrant:
		return t, r.AllowsFulfilment() && r.Grant() == nil
	case events.TaskRevoke:
		return t, r.Status() == events.StatusGranted && r.RevocationDue() != ""
	}
	return events.TaskOpened{}, false
}

// TaskSpec is what a new manual task says: who may do it, what to do, and by when.
type TaskSpec struct {
	FulfillerGroups []string
	Instructions    string
	DueAt           time.Time
}

// DecideOpenTask returns the decision that opens r's task of purpose if r needs one now: a grant task
// for an allowed, ungranted manual request; a revoke task for a manual grant whose revocation is due.
// It appends nothing if the task is open already or not needed.
func DecideOpenTask(purpose events.TaskPurpose, spec TaskSpec) func(*events.Request) ([]events.Draft, error) {
	return func(r *events.Request) ([]events.Draft, error) {
		switch {
		case hasTask(r, purpose):
			return nil, nil
		case purpose == events.TaskGrant && !(r.AllowsFulfilment() && r.Grant() == nil):
			return nil, nil
		case purpose == events.TaskRevoke && !(r.Status() == events.StatusGranted && r.RevocationDue() != ""):
			return nil, nil
		}
		return []events.Draft{{Payload: events.TaskOpened{
			TaskID: TaskID(r.ID(), purpose), Purpose: purpose, FulfillerGroups: spec.FulfillerGroups,
			Instructions: spec.Instructions, DueAt: spec.DueAt,
		}, Actor: Fulfiller, CausationID: "task:" + string(purpose)}}, nil
	}
}

// MayComplete says whether person, a member of groups, may complete task t of r, or why not: they must
// be in one of the task's fulfiller groups, and must be neither the requester, the subject, nor one of
// the approvers (separation of duties: who asked or approved does not also carry out the change).
// Identities must be normalised the way the stream stores them.
func MayComplete(r *events.Request, t events.TaskOpened, person string, groups []string) error {
	s := r.Submitted()
	switch {
	case person == "":
		return fmt.Errorf("%w: no identity", ErrNotFulfiller)
	case !slices.ContainsFunc(groups, func(g string) bool { return slices.Contains(t.FulfillerGroups, g) }):
		return fmt.Errorf("%w: only members of %s complete this task", ErrNotFulfiller, strings.Join(t.FulfillerGroups, ", "))
	case person == s.Requester.ID:
		return fmt.Errorf("%w: the requester may not fulfil their own request", ErrNotFulfiller)
	case person == s.Subject.ID:
		return fmt.Errorf("%w: the subject may not fulfil access for themselves", ErrNotFulfiller)
	case slices.Contains(r.Approvers(), person):
		return fmt.Errorf("%w: an approver may not also fulfil the request", ErrNotFulfiller)
	}
	return nil
}

// Completion is a person's report that they carried out a manual task.
type Completion struct {
	TaskID   string
	Person   string
	Groups   []string
	Evidence string
}

// CheckCompletion returns r's open task named by c if c.Person may complete it with c.Evidence, or the
// reason not: ErrTaskNotOpen, ErrNotFulfiller or ErrTask.
func CheckCompletion(r *events.Request, purpose events.TaskPurpose, c Completion) (events.TaskOpened, error) {
	t, open := OpenTask(r, purpose)
	if !open || t.TaskID != c.TaskID {
		return events.TaskOpened{}, fmt.Errorf("%w: task %s", ErrTaskNotOpen, c.TaskID)
	}
	if err := MayComplete(r, t, c.Person, c.Groups); err != nil {
		return events.TaskOpened{}, err
	}
	if err := validEvidence(c.Evidence); err != nil {
		return events.TaskOpened{}, err
	}
	return t, nil
}

// DecideCompleteGrant returns the decision that records a completed grant task: granted, with the
// person as fulfiller, the evidence as what was observed, and expires_at from the effective duration at
// now. The same person's retry of a completion that landed appends nothing; a task that is no longer
// open or a person who may not complete it is refused.
func DecideCompleteGrant(c Completion, now time.Time) func(*events.Request) ([]events.Draft, error) {
	return func(r *events.Request) ([]events.Draft, error) {
		if r.HasCaused(events.TypeGranted, "task:"+c.TaskID) && r.Grant().Fulfiller == c.Person {
			return nil, nil // the same person's retry of a completion that landed
		}
		t, err := CheckCompletion(r, events.TaskGrant, c)
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
