// Package manualtask holds the rules of manual tasks, the way access is changed on systems without
// an API: fulfilment opens a grant task for an approved request and a revoke task when a manual grant
// is due for revocation (task_opened), and a person in the task's fulfiller groups carries it out and
// completes it with evidence. A grant task is completed at fulfilment, which alone may sign granted; a
// revoke task at the revoker, which alone may sign revoked. Both apply the rules here: which task is
// outstanding, and who may complete it (separation of duties: who asked for or approved the access
// never carries out the change).
//
// The rules are pure: they import the standard library and pkg/events only.
package manualtask

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/grantline/grantline/pkg/events"
)

// Connector is the catalogue's connector name for entitlements fulfilled by hand through tasks.
const Connector = "manual"

// Errors of completions; each HTTP edge maps them to problems.
var (
	// ErrInvalidCompletion wraps a malformed completion (no evidence, or too much).
	ErrInvalidCompletion = errors.New("invalid task completion")
	// ErrNotOpen means there is no such task, or it was completed or became moot.
	ErrNotOpen = errors.New("no such open task")
	// ErrNotFulfiller wraps why this person may not complete the task.
	ErrNotFulfiller = errors.New("not allowed to complete this task")
)

// ID is the ID of request requestID's task of purpose: one grant task and one revoke task at most per
// request, so opening one is idempotent and the ID says which request and purpose it is.
func ID(requestID string, purpose events.TaskPurpose) string {
	return requestID + "-" + string(purpose)
}

// ParseID splits a task ID into its request ID and purpose, and reports false for anything else.
func ParseID(taskID string) (requestID string, purpose events.TaskPurpose, ok bool) {
	id, p, found := strings.Cut(taskID, "-")
	purpose = events.TaskPurpose(p)
	if !found || !events.ValidRequestID(id) || (purpose != events.TaskGrant && purpose != events.TaskRevoke) {
		return "", "", false
	}
	return id, purpose, true
}

// Opened reports whether r holds a task of purpose, outstanding or not.
func Opened(r *events.Request, purpose events.TaskPurpose) bool {
	return slices.ContainsFunc(r.Tasks(), func(t events.TaskOpened) bool { return t.Purpose == purpose })
}

// Outstanding returns r's task of purpose while it waits for a person: a grant task until the request
// is granted or closed, a revoke task until the grant is revoked.
func Outstanding(r *events.Request, purpose events.TaskPurpose) (events.TaskOpened, bool) {
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

// MayComplete says whether person, a member of groups, may complete task t of r, or why not
// (ErrNotFulfiller): they must be in one of the task's fulfiller groups, and must be neither the
// requester, the subject, nor one of the approvers. Identities must be normalised the way the stream
// stores them.
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

// Check returns r's outstanding task of purpose named by c if c.Person may complete it with
// c.Evidence, or the reason not: ErrNotOpen, ErrNotFulfiller or ErrInvalidCompletion.
func Check(r *events.Request, purpose events.TaskPurpose, c Completion) (events.TaskOpened, error) {
	t, open := Outstanding(r, purpose)
	if !open || t.TaskID != c.TaskID {
		return events.TaskOpened{}, notOpen(c.TaskID)
	}
	if err := MayComplete(r, t, c.Person, c.Groups); err != nil {
		return events.TaskOpened{}, err
	}
	if err := validEvidence(c.Evidence); err != nil {
		return events.TaskOpened{}, err
	}
	return t, nil
}

// validEvidence bounds what a person records as evidence of a manual change.
func validEvidence(evidence string) error {
	switch {
	case len(evidence) == 0:
		return fmt.Errorf("%w: evidence is required (what was changed, where, a ticket or change number)", ErrInvalidCompletion)
	case len(evidence) > 4096:
		return fmt.Errorf("%w: evidence is longer than 4096 bytes", ErrInvalidCompletion)
	}
	return nil
}

// notOpen is the refusal for a task that does not exist, is done, or may not be known of: one
// wording, so that the three cannot be told apart.
func notOpen(taskID string) error { return fmt.Errorf("%w: task %s", ErrNotOpen, taskID) }

// Visible returns nil if a person in groups may learn of r's task taskID of purpose: a member of
// the fulfiller groups of r's task of that purpose, or someone who may see the request (sees, from
// pkg/visibility). To anyone else the task does not exist, whatever its state: the refusal is the
// one for an unknown task, so a task ID, which names its request, tells an outsider nothing.
func Visible(r *events.Request, purpose events.TaskPurpose, taskID string, groups []string, sees bool) error {
	fulfils := slices.ContainsFunc(r.Tasks(), func(t events.TaskOpened) bool {
		return t.Purpose == purpose && slices.ContainsFunc(groups, func(g string) bool { return slices.Contains(t.FulfillerGroups, g) })
	})
	if sees || fulfils {
		return nil
	}
	return notOpen(taskID)
}
