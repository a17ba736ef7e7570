// Package approval holds the approval service's rules: who may review a request, which stage a review
// counts for, which events a review appends (reviewed, then approved or rejected once the outcome is
// known), the emergency post-review, and what a passing deadline appends. The rules are pure: they read
// the folded request and return drafts; the aggregate in pkg/events checks every draft again before it
// reaches the stream, so these rules can only be stricter than the contract, never looser.
//
// Separation of duties (DESIGN §4): a reviewer is never the requester nor the subject, each person
// counts once per request whatever groups they are in, and identities are compared after PRECIS
// normalisation on both sides, so "Alice" and "ａｌｉｃｅ" are alice.
package approval

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/grantline/grantline/pkg/events"
)

// Errors the rules return; edges map each to one answer.
var (
	// ErrNotFound: the request has no events.
	ErrNotFound = errors.New("no such request")
	// ErrSeparationOfDuties is wrapped by every *DutyError.
	ErrSeparationOfDuties = errors.New("separation of duties")
	// ErrNotReviewer: the reviewer is in none of the groups that may review the request now.
	ErrNotReviewer = errors.New("not a reviewer of this request")
	// ErrNotPending: the request no longer awaits this kind of review (approved, rejected, withdrawn,
	// already post-reviewed, …).
	ErrNotPending = errors.New("the request does not await review")
	// ErrStaleDigest: the review names a request digest other than the request's.
	ErrStaleDigest = errors.New("the review is for a different version of the request")
	// ErrInvalid: the review itself is malformed (an unknown decision, a flag without a reason, …).
	ErrInvalid = errors.New("invalid review")
)

// Reasons a *DutyError gives.
const (
	DutyRequester       = "requester"
	DutySubject         = "subject"
	DutyAlreadyReviewed = "already_reviewed"
)

// DutyError is a refusal on separation of duties: who was refused and why (one of the Duty reasons).
type DutyError struct {
	Reviewer string
	Reason   string
}

func (e *DutyError) Error() string {
	switch e.Reason {
	case DutyRequester:
		return fmt.Sprintf("separation of duties: %s requested this access and may not review it", e.Reviewer)
	case DutySubject:
		return fmt.Sprintf("separation of duties: %s would hold this access and may not review it", e.Reviewer)
	default:
		return fmt.Sprintf("separation of duties: %s has already reviewed this request; each person counts once", e.Reviewer)
	}
}

// Unwrap makes errors.Is(err, ErrSeparationOfDuties) true.
func (e *DutyError) Unwrap() error { return ErrSeparationOfDuties }

// TooEarlyError says a deadline has not passed yet: the timer fired before the reaction's clock reached
// it. Retry at Until.
type TooEarlyError struct {
	Until time.Time
}

func (e *TooEarlyError) Error() string {
	return "the deadline " + e.Until.UTC().Format(time.RFC3339) + " has not passed"
}

// MaxComment bounds a review's comment or a post-review's reason, in bytes.
const MaxComment = 4096

// Rules decides reviews. Normalize maps an identity to its one spelling (auth.NormalizeSubject in
// production); it is a parameter so the rules stay free of the identity library.
type Rules struct {
	Normalize func(string) (string, error)
}

// Review is one reviewer's verdict on a request, as the edge received it.
type Review struct {
	// Reviewer is the authenticated caller: subject and groups as the identity provider asserted them.
	Reviewer events.Principal
	Decision events.ReviewDecision
	Comment  string
	// RequestDigest is the digest of the request the reviewer saw; empty means the current one.
	RequestDigest string
	// Via is who acted for the reviewer with a delegated token (auth.Identity.Actor), recorded in the
	// reviewed event; empty for the reviewer's own token. It changes nothing of what is decided.
	Via string
	// IdempotencyKey, if set, names this action of the reviewer's (one per click or command): the same
	// review sent again with it is answered with what was recorded (see Recorded), not refused.
	IdempotencyKey string
}

// ReviewCausation is the causation ID a review with idempotency key carries.
func ReviewCausation(key string) string { return "review:" + key }

// Recorded returns the review rv already recorded on req: one with rv's idempotency key by the same
// reviewer (a retry after the answer was lost). ok is false for a review without a key, a key never
// recorded, or one recorded by someone else.
func (ru Rules) Recorded(req *events.Request, rv Review) (prior events.Reviewed, ok bool) {
	if rv.IdempotencyKey == "" || !req.HasCaused(events.TypeReviewed, ReviewCausation(rv.IdempotencyKey)) {
		return events.Reviewed{}, false
	}
	me, err := ru.Normalize(rv.Reviewer.ID)
	if err != nil {
		return events.Reviewed{}, false
	}
	for _, r := range req.Reviews() {
		if ru.same(r.Reviewer.ID, me) {
			return r, true
		}
	}
	return events.Reviewed{}, false
}

// Review decides the events for rv on req: a reviewed event for the first open stage whose groups the
// reviewer is in, then approved when that review satisfies every stage, or rejected when it rejects.
// They are meant to be appended together, as one atomic batch.
//
// It returns ErrNotFound for a request with no events; ErrInvalid for an unknown decision or an
// over-long comment; a *DutyError (ErrSeparationOfDuties) for the requester or the subject, in any
// state, and for a person who already reviewed; ErrNotPending when the request does not await review;
// ErrStaleDigest when rv names another digest; ErrNotReviewer when no open stage has the reviewer's
// groups.
func (ru Rules) Review(req *events.Request, rv Review) ([]events.Draft, error) {
	if req.Status() == events.StatusNone {
		return nil, ErrNotFound
	}
	if rv.Decision != events.ReviewApprove && rv.Decision != events.ReviewReject {
		return nil, fmt.Errorf("%w: decision %q is neither approve nor reject", ErrInvalid, rv.Decision)
	}
	if len(rv.Comment) > MaxComment {
		return nil, fmt.Errorf("%w: the comment is longer than %d bytes", ErrInvalid, MaxComment)
	}
	me, err := ru.self(req, rv.Reviewer.ID)
	if err != nil {
		return nil, err
	}
	if req.Status() != events.StatusPendingApproval {
		return nil, fmt.Errorf("%w: it is %s", ErrNotPending, req.Status())
	}
	digest := req.Submitted().RequestDigest
	if rv.RequestDigest != "" && rv.RequestDigest != digest {
		return nil, fmt.Errorf("%w: reviewed %s, the request is %s", ErrStaleDigest, rv.RequestDigest, digest)
	}
	for _, prior := range req.Reviews() {
		if ru.same(prior.Reviewer.ID, me) {
			return nil, &DutyError{Reviewer: me, Reason: DutyAlreadyReviewed}
		}
	}
	stage, err := stageFor(req, rv.Reviewer.Groups)
	if err != nil {
		return nil, err
	}

	drafts := []events.Draft{{Actor: me, Payload: events.Reviewed{
		Reviewer: events.Principal{ID: me, Groups: slices.Clone(rv.Reviewer.Groups)}, Stage: stage,
		Decision: rv.Decision, Comment: rv.Comment, RequestDigest: digest, Via: rv.Via,
	}}}
	if rv.IdempotencyKey != "" {
		drafts[0].CausationID = ReviewCausation(rv.IdempotencyKey)
	}
	switch {
	case rv.Decision == events.ReviewReject:
		drafts = append(drafts, events.Draft{Payload: events.Rejected{Reason: events.RejectedByReviewer, RejectedBy: me}})
	case satisfiedWith(req, stage):
		drafts = append(drafts, events.Draft{Payload: events.Approved{Approvers: append(req.ApprovedDraft().Approvers, me)}})
	}
	return drafts, nil
}

// PostReview is the verdict on an emergency grant after the fact.
type PostReview struct {
	Reviewer events.Principal
	Outcome  events.PostReviewOutcome
	// Reason is required for a flagged grant: it is what the revocation and the auditor read.
	Reason string
}

// PostReview decides the post_reviewed event of an emergency grant. It returns ErrNotFound for a
// request with no events; ErrInvalid for an unknown outcome, or a flag without a reason; a *DutyError
// for the requester or the subject; ErrNotPending when no post-review is open (not an emergency, not
// granted yet, or already post-reviewed); ErrNotReviewer when the reviewer is in none of the
// post-review groups.
func (ru Rules) PostReview(req *events.Request, pr PostReview) ([]events.Draft, error) {
	if req.Status() == events.StatusNone {
		return nil, ErrNotFound
	}
	switch {
	case pr.Outcome != events.PostReviewRatified && pr.Outcome != events.PostReviewFlagged:
		return nil, fmt.Errorf("%w: outcome %q is neither ratified nor flagged", ErrInvalid, pr.Outcome)
	case pr.Outcome == events.PostReviewFlagged && pr.Reason == "":
		return nil, fmt.Errorf("%w: a flagged grant needs a reason", ErrInvalid)
	case len(pr.Reason) > MaxComment:
		return nil, fmt.Errorf("%w: the reason is longer than %d bytes", ErrInvalid, MaxComment)
	}
	me, err := ru.self(req, pr.Reviewer.ID)
	if err != nil {
		return nil, err
	}
	if !req.PostReviewOpen() {
		return nil, fmt.Errorf("%w: no post-review is open for it", ErrNotPending)
	}
	if !sharesGroup(pr.Reviewer.Groups, req.Decision().PostReview.Groups) {
		return nil, fmt.Errorf("%w: post-reviews are for %v", ErrNotReviewer, req.Decision().PostReview.Groups)
	}
	return []events.Draft{{Actor: me, Payload: events.PostReviewed{
		Reviewer: events.Principal{ID: me, Groups: slices.Clone(pr.Reviewer.Groups)}, Outcome: pr.Outcome, Reason: pr.Reason,
	}}}, nil
}

// Timeout decides what the end of the approval window appends at time now: rejected with reason
// timeout while the request still awaits approval, nothing once it does not (a stale timer). It returns
// a *TooEarlyError if now is before the deadline. The causation makes a repeated timer append once.
func Timeout(req *events.Request, now time.Time) ([]events.Draft, error) {
	deadline := req.Decision().ApprovalDeadline
	if req.Status() != events.StatusPendingApproval || deadline == nil {
		return nil, nil
	}
	if now.Before(*deadline) {
		return nil, &TooEarlyError{Until: *deadline}
	}
	return []events.Draft{{Payload: events.Rejected{Reason: events.RejectedTimeout}, CausationID: TimeoutCause(req.ID())}}, nil
}

// GrantWait is how long a post-review deadline that passed before its emergency grant was made waits
// before it looks again (approval.Overdue).
const GrantWait = 5 * time.Second

// Overdue decides what the post-review deadline appends at time now: post_review_overdue while an
// emergency grant still awaits its post-review and has not been marked overdue, nothing otherwise. It
// returns a *TooEarlyError if now is before the deadline, or, for an emergency approved but not granted
// yet (the deadline is armed at the decision), GrantWait from now: the grant may still be made, and an
// emergency granted after its deadline is overdue from the start.
func Overdue(req *events.Request, now time.Time) ([]events.Draft, error) {
	if req.Decision().Outcome == events.OutcomeEmergency && req.Status() == events.StatusApproved {
		return nil, &TooEarlyError{Until: now.Add(GrantWait)}
	}
	if !req.PostReviewOpen() || req.PostReviewOverdue() {
		return nil, nil
	}
	deadline := req.Decision().PostReview.Deadline
	if now.Before(deadline) {
		return nil, &TooEarlyError{Until: deadline}
	}
	return []events.Draft{{Payload: events.PostReviewOverdue{Deadline: deadline}, CausationID: OverdueCause(req.ID())}}, nil
}

// TimeoutCause is the causation of the rejected event the approval window appends.
func TimeoutCause(requestID string) string { return "approval-window:" + requestID }

// OverdueCause is the causation of the post_review_overdue event the post-review deadline appends.
func OverdueCause(requestID string) string { return "post-review:" + requestID }

// self normalises the reviewer and refuses the requester and the subject of req.
func (ru Rules) self(req *events.Request, reviewer string) (string, error) {
	me, err := ru.Normalize(reviewer)
	if err != nil {
		return "", fmt.Errorf("%w: reviewer identity: %v", ErrInvalid, err)
	}
	s := req.Submitted()
	switch {
	case ru.same(s.Requester.ID, me):
		return "", &DutyError{Reviewer: me, Reason: DutyRequester}
	case ru.same(s.Subject.ID, me):
		return "", &DutyError{Reviewer: me, Reason: DutySubject}
	}
	return me, nil
}

// same compares a stored identity with the normalised reviewer. Stored identities were normalised by
// the edge that received them; normalising them again costs little and keeps a variant spelling that
// slipped in from ever passing as someone else.
func (ru Rules) same(stored, me string) bool {
	if stored == me {
		return true
	}
	n, err := ru.Normalize(stored)
	return err == nil && n == me
}

// stageFor is the first open stage whose groups include one of groups. A reviewer of a stage that is
// not open yet (ordered stages) is told which stage it waits for.
func stageFor(req *events.Request, groups []string) (int, error) {
	stages := req.Decision().Stages
	open := req.OpenStages()
	for _, i := range open {
		if sharesGroup(groups, stages[i].Groups) {
			return i, nil
		}
	}
	for i, st := range stages {
		if sharesGroup(groups, st.Groups) && !req.StageSatisfied(i) && len(open) > 0 {
			return 0, fmt.Errorf("%w yet: stage %q opens once stage %q is satisfied", ErrNotReviewer, st.Name, stages[open[0]].Name)
		}
	}
	return 0, fmt.Errorf("%w: no open stage is for any of the groups %v", ErrNotReviewer, groups)
}

// satisfiedWith reports whether every stage is satisfied once one more approval counts for stage.
func satisfiedWith(req *events.Request, stage int) bool {
	approvals := map[int]int{stage: 1}
	for _, rv := range req.Reviews() {
		if rv.Decision == events.ReviewApprove {
			approvals[rv.Stage]++
		}
	}
	for i, st := range req.Decision().Stages {
		if approvals[i] < st.MinApprovals {
			return false
		}
	}
	return true
}

func sharesGroup(have, want []string) bool {
	return slices.ContainsFunc(have, func(g string) bool { return slices.Contains(want, g) })
}
