package events

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// Status is the lifecycle state of a request, derived only from its events (DESIGN §3.4).
type Status string

// Statuses. StatusNone is a request with no events yet.
const (
	StatusNone            Status = ""
	StatusSubmitted       Status = "submitted"
	StatusDenied          Status = "denied"
	StatusPendingApproval Status = "pending_approval"
	StatusApproved        Status = "approved"
	StatusGranted         Status = "granted"
	StatusRevoked         Status = "revoked"
	StatusRejected        Status = "rejected"
	StatusWithdrawn       Status = "withdrawn"
	StatusFailed          Status = "failed"
	// StatusFinding is not a request's: the subject holds drift that no request explains (FindingID).
	StatusFinding Status = "finding"
)

// Terminal reports whether s is absorbing: no event changes the status of a request in it.
func (s Status) Terminal() bool {
	switch s {
	case StatusDenied, StatusRevoked, StatusRejected, StatusWithdrawn, StatusFailed, StatusFinding:
		return true
	}
	return false
}

// ErrRefused is wrapped by every *RefusedError: the event does not fit the request's current state.
var ErrRefused = errors.New("event refused by the request")

// RefusedError says which event the aggregate refused, in which state, and why.
type RefusedError struct {
	Status Status
	Type   Type
	Reason string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("%s refused in state %q: %s", e.Type.Name(), e.Status, e.Reason)
}

// Unwrap makes errors.Is(err, ErrRefused) true.
func (e *RefusedError) Unwrap() error { return ErrRefused }

// Request is the aggregate: the state of one access request folded from its events. Its fields change
// only through Apply, so replaying a stream and handling a live event run the same code.
type Request struct {
	id        string
	version   int
	status    Status
	submitted Submitted
	decision  PolicyDecided
	reviews   []Reviewed
	approvers []string
	rejection *Rejected
	// startCheck is policy's check at the requested start, nil before it (and for a request without one).
	startCheck *StartChecked
	tasks      []TaskOpened
	grant      *Granted
	grantedAt  time.Time
	// revocation is why access must end (expiry, early request, failed post-review); "" while it may stay.
	revocation       RevocationReason
	revocationFailed *RevocationFailed
	revoked          *Revoked
	failure          *FulfilmentFailed
	postReview       *PostReviewed
	postOverdue      bool
	// drift is the recorded drift in order; driftRevocation says access found after the revocation is
	// to be revoked again, accessMissing that a live grant's missing access is recorded.
	drift           []DriftDetected
	driftRevocation bool
	accessMissing   bool
	causes          map[causeKey]bool
}

type causeKey struct {
	t      Type
	causID string
}

// NewRequest returns the empty aggregate of request id, ready for its first event.
func NewRequest(id string) *Request { return &Request{id: id, causes: map[causeKey]bool{}} }

// Fold applies evs in order to a new aggregate of request id and stops at the first refused event.
func Fold(id string, evs []Event) (*Request, error) {
	r := NewRequest(id)
	for i, ev := range evs {
		if err := r.Apply(ev); err != nil {
			return nil, fmt.Errorf("event %d (%s): %w", i+1, ev.ID, err)
		}
	}
	return r, nil
}

// ID is the request ID.
func (r *Request) ID() string { return r.id }

// Version is the number of events applied.
func (r *Request) Version() int { return r.version }

// Status is the derived lifecycle status.
func (r *Request) Status() Status { return r.status }

// Submitted is the captured request; zero before the first event.
func (r *Request) Submitted() Submitted { return r.submitted }

// Decision is the policy decision; zero Outcome while none was made.
func (r *Request) Decision() PolicyDecided { return r.decision }

// Reviews are the recorded reviews in order.
func (r *Request) Reviews() []Reviewed { return slices.Clone(r.reviews) }

// Approvers are the distinct people whose approvals counted, in order.
func (r *Request) Approvers() []string { return slices.Clone(r.approvers) }

// Tasks are the manual fulfilment tasks opened for the request.
func (r *Request) Tasks() []TaskOpened { return slices.Clone(r.tasks) }

// Grant is the recorded grant, or nil before one.
func (r *Request) Grant() *Granted { return r.grant }

// Revoked is the recorded revocation, or nil.
func (r *Request) Revoked() *Revoked { return r.revoked }

// RevocationDue says why access must end now ("" while the grant may stay).
func (r *Request) RevocationDue() RevocationReason { return r.revocation }

// PostReviewOpen reports whether an emergency grant still awaits its post-review.
func (r *Request) PostReviewOpen() bool {
	return r.decision.Outcome == OutcomeEmergency && r.grant != nil && r.postReview == nil
}

// HasCaused reports whether the request already holds an event of type t caused by causationID; a
// redelivered reaction checks it and appends nothing the second time.
func (r *Request) HasCaused(t Type, causationID string) bool {
	return causationID != "" && r.causes[causeKey{t, causationID}]
}

// AllowsFulfilment reports whether the request may be granted now: policy allowed it outright (or as an
// emergency), or every approval stage is satisfied and recorded as approved; and a request that asked for
// access from a later time has also passed policy's check at that time.
func (r *Request) AllowsFulfilment() bool { return r.status == StatusApproved && !r.StartCheckDue() }

// StartCheckDue reports whether the request is approved but asked for access from a later time, and
// policy has not checked it at that time yet: nothing is granted before that check allows it.
func (r *Request) StartCheckDue() bool {
	return r.status == StatusApproved && r.submitted.StartAt != nil && r.startCheck == nil
}

// StartCheck is policy's check at the requested start, or nil before it.
func (r *Request) StartCheck() *StartChecked { return r.startCheck }

// StageSatisfied reports whether stage i has its minimum of distinct approvals.
func (r *Request) StageSatisfied(i int) bool {
	if i < 0 || i >= len(r.decision.Stages) {
		return false
	}
	return r.stageApprovals(i) >= r.decision.Stages[i].MinApprovals
}

// StagesSatisfied reports whether every approval stage is satisfied.
func (r *Request) StagesSatisfied() bool {
	for i := range r.decision.Stages {
		if !r.StageSatisfied(i) {
			return false
		}
	}
	return len(r.decision.Stages) > 0
}

// OpenStages are the stages that accept approvals now: unsatisfied ones, and with ordered stages only
// the first of those.
func (r *Request) OpenStages() []int {
	var open []int
	for i := range r.decision.Stages {
		if r.StageSatisfied(i) {
			continue
		}
		open = append(open, i)
		if r.decision.StagesOrdered {
			break
		}
	}
	return open
}

func (r *Request) stageApprovals(i int) int {
	n := 0
	for _, rv := range r.reviews {
		if rv.Stage == i && rv.Decision == ReviewApprove {
			n++
		}
	}
	return n
}

// MayReview says whether person p may review this request at all, or why not: separation of duties
// (DESIGN §4) forbids the requester and the subject (a workload never approves its own access), and
// each person counts once per request. Identities must already be normalised by the edge that received
// them.
func (r *Request) MayReview(p string) error {
	s := r.submitted
	switch {
	case p == "":
		return errors.New("reviewer has no identity")
	case p == s.Requester.ID:
		return errors.New("the requester may not review their own request")
	case p == s.Subject.ID:
		return errors.New("the subject may not review a request for themselves")
	}
	for _, rv := range r.reviews {
		if rv.Reviewer.ID == p {
			return errors.New("each person reviews a request once")
		}
	}
	return nil
}

// ErrNotExtendable is wrapped by every *ExtensionError.
var ErrNotExtendable = errors.New("the grant cannot be extended")

// ExtensionError says why a grant cannot be extended by a submission.
type ExtensionError struct {
	RequestID string
	Reason    string
}

func (e *ExtensionError) Error() string {
	return fmt.Sprintf("request %s cannot be extended: %s", e.RequestID, e.Reason)
}

// Unwrap makes errors.Is(err, ErrNotExtendable) true.
func (e *ExtensionError) Unwrap() error { return ErrNotExtendable }

// MayExtend says whether ext, submitted at now, may extend this request's grant, and returns the facts
// its submitted event records (Submitted.Extends), or an *ExtensionError. Only an active grant (granted,
// not expired, no revocation under way) is extended, for the same entitlement and subject, by its
// requester or a member of its subject's owning team; the extension begins at once, and the access held
// continuously through the chain of extensions must end within maxTotal of HeldSince.
func (r *Request) MayExtend(ext Submitted, now time.Time, maxTotal time.Duration) (Extension, error) {
	refuse := func(reason string) (Extension, error) {
		return Extension{}, &ExtensionError{RequestID: r.id, Reason: reason}
	}
	orig := r.submitted
	owner := orig.Subject.Owner != "" && slices.Contains(ext.Requester.Groups, orig.Subject.Owner)
	// Who asks comes first, so a stranger learns nothing of the grant's state.
	switch {
	case ext.Requester.ID != orig.Requester.ID && !owner:
		return refuse("only the grant's requester or its subject's owners may extend it")
	case r.status != StatusGranted || r.revocation != "" || !r.grant.ExpiresAt.After(now):
		return refuse("only an active grant is extended; this one is " + r.activity(now))
	case ext.Entitlement != orig.Entitlement:
		return refuse(fmt.Sprintf("the grant is of %s, not %s", orig.Entitlement, ext.Entitlement))
	case ext.Subject.Kind != orig.Subject.Kind || ext.Subject.ID != orig.Subject.ID:
		return refuse(fmt.Sprintf("the grant is held by %s %s", orig.Subject.Kind, orig.Subject.ID))
	case ext.StartAt != nil || ext.Emergency:
		return refuse("an extension begins at once and is not an emergency")
	}
	held := r.HeldSince()
	if end := now.Add(time.Duration(ext.DurationSeconds) * time.Second); end.Sub(held) > maxTotal {
		return refuse(fmt.Sprintf("held since %s, it would last %s in all; %s allows at most %s",
			held.UTC().Format(time.RFC3339), end.Sub(held), orig.Entitlement, maxTotal))
	}
	return Extension{RequestID: r.id, HeldSince: held, ExpiresAt: r.grant.ExpiresAt,
		DurationSeconds: r.decision.EffectiveDurationSeconds}, nil
}

// activity names why a grant is not active, for refusals.
func (r *Request) activity(now time.Time) string {
	switch {
	case r.status != StatusGranted:
		return string(r.status)
	case r.revocation != "":
		return "being revoked (" + string(r.revocation) + ")"
	}
	return "past its expiry at " + r.grant.ExpiresAt.UTC().Format(time.RFC3339)
}

// HeldSince is when the access this request grants began to be held without a gap: the first grant of
// its chain of extensions, or its own grant. Zero before the grant.
func (r *Request) HeldSince() time.Time {
	switch {
	case r.grant == nil:
		return time.Time{}
	case r.submitted.Extends != nil:
		return r.submitted.Extends.HeldSince
	}
	return r.grantedAt
}

// Apply checks that ev fits the request's current state and moves the state on. A refused event leaves
// the request unchanged and returns a *RefusedError.
func (r *Request) Apply(ev Event) error {
	if ev.Payload == nil || ev.Payload.EventType() != ev.Type {
		return r.refuse(ev.Type, "payload does not match the event type")
	}
	if r.version > 0 && ev.Subject != r.id {
		return r.refuse(ev.Type, fmt.Sprintf("event is for request %q", ev.Subject))
	}
	if err := r.check(ev); err != nil {
		return err
	}
	r.apply(ev)
	r.version++
	if ev.CausationID != "" {
		r.causes[causeKey{ev.Type, ev.CausationID}] = true
	}
	return nil
}

func (r *Request) refuse(t Type, reason string) error {
	return &RefusedError{Status: r.status, Type: t, Reason: reason}
}

// check is the transition table: for each event type, the states it is legal in and the facts it must
// agree with. It never changes r.
func (r *Request) check(ev Event) error {
	t := ev.Type
	refuse := func(reason string) error { return r.refuse(t, reason) }
	if r.status == StatusNone && t != TypeSubmitted && !isFinding(ev.Payload) {
		return refuse("a request begins with submitted")
	}
	// Terminal states absorb everything but the post-review of an emergency grant, which stays owed
	// after the grant has been revoked, and drift on a revoked grant: access found on the target after
	// the revocation, and its revocation again.
	if r.status.Terminal() && t != TypePostReviewed && t != TypePostReviewOverdue &&
		(r.status != StatusRevoked || (t != TypeDriftDetected && t != TypeRevoked)) {
		return refuse("the request is closed")
	}

	switch p := ev.Payload.(type) {
	case Submitted:
		if r.status != StatusNone {
			return refuse("the request was already submitted")
		}
		if ev.Subject != r.id {
			return refuse(fmt.Sprintf("event is for request %q", ev.Subject))
		}
		if p.Requester.ID == "" || p.Subject.ID == "" || p.Entitlement == "" {
			return refuse("requester, subject and entitlement are required")
		}
		if p.Subject.Kind != SubjectHuman && p.Subject.Kind != SubjectServiceAccount && p.Subject.Kind != SubjectWorkload {
			return refuse(fmt.Sprintf("unknown subject kind %q", p.Subject.Kind))
		}
		if p.Subject.Kind != SubjectHuman && p.Subject.Owner == "" {
			return refuse("a non-human subject needs an owner")
		}
		if p.DurationSeconds <= 0 {
			return refuse("the requested duration must be positive")
		}
		if p.RequestDigest != p.Digest() {
			return refuse("request digest does not match the request")
		}
		if p.CorrelationID != "" && !ValidRequestID(p.CorrelationID) {
			return refuse("a correlation ID is a ULID")
		}
		if x := p.Extends; x != nil {
			switch {
			case !ValidRequestID(x.RequestID) || x.RequestID == ev.Subject:
				return refuse("an extension names another request")
			case p.StartAt != nil || p.Emergency:
				return refuse("an extension begins at once and is not an emergency")
			case !x.ExpiresAt.After(x.HeldSince) || x.DurationSeconds <= 0:
				return refuse("an extension records the extended grant's time held and expiry")
			}
		}

	case Withdrawn:
		switch r.status {
		case StatusSubmitted, StatusPendingApproval, StatusApproved:
		default:
			return refuse("only a request that is not yet granted can be withdrawn")
		}
		if ev.Actor != r.submitted.Requester.ID {
			return refuse("only the requester may withdraw")
		}

	case PolicyDecided:
		if r.status != StatusSubmitted {
			return refuse("policy decides once, on a submitted request")
		}
		if err := r.checkDecision(p); err != nil {
			return refuse(err.Error())
		}

	case Reviewed:
		if r.status != StatusPendingApproval {
			return refuse("the request does not await review")
		}
		if p.RequestDigest != r.submitted.RequestDigest {
			return refuse("the review is for a different request digest")
		}
		if err := r.MayReview(p.Reviewer.ID); err != nil {
			return refuse(err.Error())
		}
		if p.Decision != ReviewApprove && p.Decision != ReviewReject {
			return refuse(fmt.Sprintf("unknown review decision %q", p.Decision))
		}
		if !slices.Contains(r.OpenStages(), p.Stage) {
			return refuse(fmt.Sprintf("stage %d is not open for review", p.Stage))
		}
		if !sharesGroup(p.Reviewer.Groups, r.decision.Stages[p.Stage].Groups) {
			return refuse(fmt.Sprintf("the reviewer is in none of the groups of stage %d", p.Stage))
		}

	case Approved:
		if r.status != StatusPendingApproval {
			return refuse("the request does not await approval")
		}
		if r.hasRejection() {
			return refuse("a reviewer rejected the request")
		}
		if !r.StagesSatisfied() {
			return refuse("not every approval stage is satisfied")
		}
		if !slices.Equal(p.Approvers, r.approvingReviewers()) {
			return refuse("the approvers do not match the recorded approvals")
		}

	case Rejected:
		if r.status != StatusPendingApproval {
			return refuse("the request does not await approval")
		}
		switch p.Reason {
		case RejectedByReviewer:
			if !r.hasRejection() {
				return refuse("no reviewer rejected the request")
			}
		case RejectedTimeout:
			if d := r.decision.ApprovalDeadline; d == nil || ev.Time.Before(*d) {
				return refuse("the approval window has not ended")
			}
		default:
			return refuse(fmt.Sprintf("unknown rejection reason %q", p.Reason))
		}

	case StartChecked:
		if err := r.checkStart(ev, p); err != nil {
			return refuse(err.Error())
		}

	case PostReviewed:
		if r.decision.Outcome != OutcomeEmergency || r.grant == nil {
			return refuse("only a granted emergency request is post-reviewed")
		}
		if r.postReview != nil {
			return refuse("the post-review is already recorded")
		}
		if err := r.MayReview(p.Reviewer.ID); err != nil {
			return refuse(err.Error())
		}
		if !sharesGroup(p.Reviewer.Groups, r.decision.PostReview.Groups) {
			return refuse("the reviewer is in none of the post-review groups")
		}
		if p.Outcome != PostReviewRatified && p.Outcome != PostReviewFlagged {
			return refuse(fmt.Sprintf("unknown post-review outcome %q", p.Outcome))
		}

	case PostReviewOverdue:
		if !r.PostReviewOpen() || r.postOverdue {
			return refuse("no post-review is open and due")
		}
		if ev.Time.Before(r.decision.PostReview.Deadline) {
			return refuse("the post-review deadline has not passed")
		}

	case TaskOpened:
		switch {
		case p.Purpose == TaskGrant && r.status == StatusApproved:
		case p.Purpose == TaskRevoke && r.status == StatusGranted && r.revocation != "":
		default:
			return refuse(fmt.Sprintf("a %s task does not fit the request now", p.Purpose))
		}
		if p.TaskID == "" || len(p.FulfillerGroups) == 0 {
			return refuse("a task needs an ID and fulfiller groups")
		}
		if p.ContinuedBy != "" && (p.Purpose != TaskRevoke || !ValidRequestID(p.ContinuedBy) || p.ContinuedBy == r.id) {
			return refuse("only a revoke task is continued, by another request")
		}

	case Granted:
		if r.status != StatusApproved {
			return refuse("nothing allows fulfilment")
		}
		if !p.Observed.Present {
			return refuse("a grant must be observed on the target")
		}
		limit := ev.Time.Add(time.Duration(r.decision.EffectiveDurationSeconds) * time.Second)
		if !p.ExpiresAt.After(ev.Time) || p.ExpiresAt.After(limit) {
			return refuse("expires_at must lie after the grant and within the effective duration")
		}
		if p.Fulfiller == "" || p.Fulfiller == r.submitted.Requester.ID || slices.Contains(r.approvers, p.Fulfiller) {
			return refuse("the fulfiller must be named and be neither the requester nor an approver")
		}

	case FulfilmentFailed:
		if r.status != StatusApproved {
			return refuse("no fulfilment is under way")
		}

	case RevocationRequested:
		if r.status != StatusGranted {
			return refuse("only granted access can be revoked")
		}
		if r.revocation != "" {
			return refuse("revocation is already under way")
		}
		switch p.Reason {
		case RevokeEarly, RevokeDrift, RevokeReviewFailed, RevokeLocked, RevokeReviewRevoked:
		default:
			return refuse(fmt.Sprintf("reason %q does not ask for early revocation", p.Reason))
		}
		if (p.Reason == RevokeLocked) != ValidRequestID(p.LockID) {
			return refuse("a revocation names a lock exactly when a lock asks for it")
		}
		if (p.Reason == RevokeReviewRevoked) != ValidRequestID(p.CampaignID) {
			return refuse("a revocation names a campaign exactly when an access review asks for it")
		}

	case Expired:
		if r.status != StatusGranted {
			return refuse("only granted access expires")
		}
		if r.revocation != "" {
			return refuse("revocation is already under way")
		}
		if !p.ExpiresAt.Equal(r.grant.ExpiresAt) || ev.Time.Before(r.grant.ExpiresAt) {
			return refuse("the grant has not reached its expiry")
		}

	case Revoked:
		due := r.revocation
		if r.atExpiry(ev, p) {
			// An expiry revoked at its first attempt is one event: expired is recorded only when that
			// attempt fails, to keep the overdue grant visible.
			due = RevokeExpired
		}
		if r.status == StatusRevoked {
			if !r.driftRevocation {
				return refuse("nothing asked for revocation")
			}
		} else if r.status != StatusGranted || due == "" {
			return refuse("nothing asked for revocation")
		}
		if p.Reason != due {
			return refuse(fmt.Sprintf("revocation reason %q, but %q was due", p.Reason, due))
		}
		if p.Observed.Present {
			return refuse("access must be observed absent after revocation")
		}

	case RevocationFailed:
		if r.status != StatusGranted || r.revocation == "" {
			return refuse("no revocation is under way")
		}

	case DriftDetected:
		if err := r.checkDrift(ev, p); err != nil {
			return refuse(err.Error())
		}

	default:
		return refuse("unknown payload")
	}
	return nil
}

// atExpiry reports whether ev revokes a live grant, with nothing else under way, for its expiry, at or
// after it: the expiry needs no expired event of its own then.
func (r *Request) atExpiry(ev Event, p Revoked) bool {
	return r.status == StatusGranted && r.revocation == "" && p.Reason == RevokeExpired && !ev.Time.Before(r.grant.ExpiresAt)
}

// checkStart is the start-check part of the transition table. A granted event does not require the
// check in turn: histories recorded before start checks existed hold scheduled grants without one, and
// must still fold. Fulfilment waits for it (AllowsFulfilment).
func (r *Request) checkStart(ev Event, p StartChecked) error {
	start := r.submitted.StartAt
	switch {
	case r.status != StatusApproved:
		return errors.New("only an approved request is checked at its start")
	case start == nil:
		return errors.New("the request asked for no later start")
	case r.startCheck != nil:
		return errors.New("the start is checked once")
	case ev.Time.Before(*start):
		return errors.New("the requested start has not come")
	case p.PolicyRevision == "":
		return errors.New("a start check records its policy revision")
	case p.GroupsFrom != GroupsFromDirectory && p.GroupsFrom != GroupsFromSubmission:
		return fmt.Errorf("unknown source of groups %q", p.GroupsFrom)
	}
	switch p.Outcome {
	case OutcomeDeny, OutcomeApprovalRequired, OutcomeAutoApproved, OutcomeEmergency:
	default:
		return fmt.Errorf("unknown outcome %q", p.Outcome)
	}
	if (p.Outcome == OutcomeApprovalRequired) != (len(p.Stages) > 0) {
		return errors.New("a start check names stages exactly for approval_required")
	}
	allowed := p.Outcome == OutcomeAutoApproved || p.Outcome == OutcomeEmergency ||
		(p.Outcome == OutcomeApprovalRequired && r.ApprovalsSatisfy(p.Stages))
	if p.Allowed != allowed {
		return fmt.Errorf("outcome %s with the approvals recorded is allowed=%v, not %v", p.Outcome, allowed, p.Allowed)
	}
	return nil
}

// ApprovalsSatisfy reports whether the approvals recorded satisfy stages: stage by stage, in order,
// each takes its minimum of approving reviewers from its groups (as their groups were at the review)
// who have not counted for an earlier stage, one person counting once. The assignment is greedy, so it
// may answer false where another assignment would pass: the start check fails closed.
func (r *Request) ApprovalsSatisfy(stages []Stage) bool {
	used := map[string]bool{}
	for _, st := range stages {
		n := 0
		for _, rv := range r.reviews {
			if n >= st.MinApprovals {
				break
			}
			if rv.Decision == ReviewApprove && !used[rv.Reviewer.ID] && sharesGroup(rv.Reviewer.Groups, st.Groups) {
				used[rv.Reviewer.ID] = true
				n++
			}
		}
		if st.MinApprovals < 1 || n < st.MinApprovals {
			return false
		}
	}
	return true
}

// checkDrift is the drift part of the transition table: what each kind of drift must say, and the
// state it fits.
func (r *Request) checkDrift(ev Event, p DriftDetected) error {
	if p.Connector == "" || p.TargetRef == "" {
		return errors.New("drift names the connector and the access on the target")
	}
	switch p.Kind {
	case DriftAfterRevocation:
		switch {
		case p.Action != DriftRevoke || !p.Observed.Present:
			return errors.New("access present after revocation is observed present and revoked again")
		case r.status != StatusRevoked:
			return errors.New("access present after revocation needs a revoked grant")
		case r.driftRevocation:
			return errors.New("its revocation again is already under way")
		}
	case DriftMissing:
		switch {
		case p.Action != DriftRecorded || p.Observed.Present:
			return errors.New("missing access is observed absent and recorded")
		case r.status != StatusGranted || r.revocation != "":
			return errors.New("missing access needs a live grant")
		case r.accessMissing:
			return errors.New("the grant's missing access is already recorded")
		}
	case DriftUnexplained:
		switch {
		case p.Action != DriftRecorded:
			return errors.New("unexplained access is recorded")
		case r.status != StatusNone || ev.Subject != r.id:
			return errors.New("unexplained access is a finding of its own, not an event of a request")
		}
	default:
		return fmt.Errorf("unknown drift kind %q", p.Kind)
	}
	return nil
}

// isFinding reports whether p begins a finding rather than a request.
func isFinding(p Payload) bool {
	d, ok := p.(DriftDetected)
	return ok && d.Kind == DriftUnexplained
}

func (r *Request) checkDecision(p PolicyDecided) error {
	requested := r.submitted.DurationSeconds
	if p.PolicyRevision == "" {
		return errors.New("a decision records its policy revision")
	}
	switch p.Outcome {
	case OutcomeDeny:
		return nil
	case OutcomeApprovalRequired:
		if len(p.Stages) == 0 {
			return errors.New("approval_required needs at least one stage")
		}
		for i, st := range p.Stages {
			if st.MinApprovals < 1 || len(st.Groups) == 0 {
				return fmt.Errorf("stage %d needs groups and at least one approval", i)
			}
		}
	case OutcomeAutoApproved:
		if len(p.Stages) > 0 {
			return errors.New("auto_approved carries no stages")
		}
	case OutcomeEmergency:
		if !r.submitted.Emergency {
			return errors.New("the emergency path needs an emergency request")
		}
		if p.PostReview == nil || len(p.PostReview.Groups) == 0 {
			return errors.New("an emergency decision sets a post-review")
		}
	default:
		return fmt.Errorf("unknown outcome %q", p.Outcome)
	}
	if p.EffectiveDurationSeconds <= 0 || p.EffectiveDurationSeconds > requested {
		return errors.New("the effective duration must be positive and at most the requested one")
	}
	return nil
}

// apply moves the state on for an event that check accepted.
func (r *Request) apply(ev Event) {
	switch p := ev.Payload.(type) {
	case Submitted:
		r.submitted = p
		r.status = StatusSubmitted
	case Withdrawn:
		r.status = StatusWithdrawn
	case PolicyDecided:
		r.decision = p
		switch p.Outcome {
		case OutcomeDeny:
			r.status = StatusDenied
		case OutcomeApprovalRequired:
			r.status = StatusPendingApproval
		case OutcomeAutoApproved, OutcomeEmergency:
			r.status = StatusApproved
		}
	case Reviewed:
		r.reviews = append(r.reviews, p)
	case Approved:
		r.approvers = p.Approvers
		r.status = StatusApproved
	case Rejected:
		r.rejection = &p
		r.status = StatusRejected
	case StartChecked:
		r.startCheck = &p
		if !p.Allowed {
			r.status = StatusDenied
		}
	case PostReviewed:
		r.postReview = &p
		if p.Outcome == PostReviewFlagged && r.status == StatusGranted && r.revocation == "" {
			r.revocation = RevokeReviewFailed
		}
	case PostReviewOverdue:
		r.postOverdue = true
	case TaskOpened:
		r.tasks = append(r.tasks, p)
	case Granted:
		r.grant = &p
		r.grantedAt = ev.Time
		r.status = StatusGranted
	case FulfilmentFailed:
		// Fulfilment records a failure only when it stops trying: at once for a permanent one, after its
		// retry time for a transient one. Either way the request ends here, where people can see it;
		// Permanent says whether asking again can help.
		r.failure = &p
		r.status = StatusFailed
	case RevocationRequested:
		r.revocation = p.Reason
	case Expired:
		r.revocation = RevokeExpired
	case Revoked:
		r.revoked = &p
		r.status = StatusRevoked
		r.driftRevocation = false
	case RevocationFailed:
		r.revocationFailed = &p
	case DriftDetected:
		r.drift = append(r.drift, p)
		switch p.Kind {
		case DriftAfterRevocation:
			r.driftRevocation = true
			r.revocation = RevokeDrift
		case DriftMissing:
			r.accessMissing = true
		case DriftUnexplained:
			r.status = StatusFinding
		}
	}
}

func (r *Request) hasRejection() bool {
	return slices.ContainsFunc(r.reviews, func(rv Reviewed) bool { return rv.Decision == ReviewReject })
}

func (r *Request) approvingReviewers() []string {
	var ids []string
	for _, rv := range r.reviews {
		if rv.Decision == ReviewApprove {
			ids = append(ids, rv.Reviewer.ID)
		}
	}
	return ids
}

// ApprovedDraft returns the approved event that records the current approvals; call it once
// StagesSatisfied is true.
func (r *Request) ApprovedDraft() Approved { return Approved{Approvers: r.approvingReviewers()} }

func sharesGroup(have, want []string) bool {
	return slices.ContainsFunc(have, func(g string) bool { return slices.Contains(want, g) })
}

// Rejection is the recorded rejection, or nil.
func (r *Request) Rejection() *Rejected { return r.rejection }

// Failure is the last recorded fulfilment failure, or nil.
func (r *Request) Failure() *FulfilmentFailed { return r.failure }

// RevocationFailure is the last recorded failed revocation attempt, or nil.
func (r *Request) RevocationFailure() *RevocationFailed { return r.revocationFailed }

// GrantedAt is when the grant was recorded; zero before.
func (r *Request) GrantedAt() time.Time { return r.grantedAt }

// PostReview is the recorded post-review of an emergency grant, or nil.
func (r *Request) PostReview() *PostReviewed { return r.postReview }

// PostReviewOverdue reports whether the post-review deadline passed with nobody reviewing.
func (r *Request) PostReviewOverdue() bool { return r.postOverdue }

// Drift is the drift recorded on this request (or this finding), in order; nil if none.
func (r *Request) Drift() []DriftDetected { return slices.Clone(r.drift) }

// DriftRevocationDue reports whether access found on the target after the grant's revocation is still
// to be revoked again (the revoked event with reason drift is not recorded yet).
func (r *Request) DriftRevocationDue() bool { return r.driftRevocation }

// AccessMissing reports whether the target was recorded lacking the live grant's access.
func (r *Request) AccessMissing() bool { return r.accessMissing }
