package events

import (
	"encoding/json/jsontext"
	"time"
)

// Payload is the data of one catalogue event. Each payload type belongs to exactly one event Type.
type Payload interface {
	EventType() Type
}

// SubjectKind says what kind of identity will hold the entitlement.
type SubjectKind string

// Subject kinds. Non-human subjects (service accounts, workload identities) always have owners.
const (
	SubjectHuman          SubjectKind = "human"
	SubjectServiceAccount SubjectKind = "service_account"
	SubjectWorkload       SubjectKind = "workload"
)

// Principal is a person as the identity provider asserted them: the immutable subject (normalised at
// the edge that received it) and their groups at that moment.
type Principal struct {
	ID     string   `json:"id"`
	Groups []string `json:"groups"`
}

// RequestSubject is the identity that will hold the entitlement.
type RequestSubject struct {
	Kind SubjectKind `json:"kind"`
	ID   string      `json:"id"`
	// Owner is the team (a group) accountable for a non-human subject, from the catalogue; empty for a
	// human. Owners are the natural approvers of their own workload's access, so ownership does not bar
	// reviewing; being the requester or the subject does.
	Owner string `json:"owner,omitempty"`
}

// Submitted records a captured request (emitted by intake).
type Submitted struct {
	Requester       Principal      `json:"requester"`
	Subject         RequestSubject `json:"subject"`
	Entitlement     string         `json:"entitlement"`
	Justification   string         `json:"justification"`
	Ticket          string         `json:"ticket,omitempty"`
	DurationSeconds int64          `json:"duration_seconds"`
	StartAt         *time.Time     `json:"start_at,omitempty"`
	Emergency       bool           `json:"emergency"`
	// Channel is "http" or "integration:<name>".
	Channel string `json:"channel"`
	// RequestDigest binds reviews to exactly this request; see Submitted.Digest.
	RequestDigest string `json:"request_digest"`
	// Extends is set when the request asks to extend an active grant: the grant it continues, as intake
	// found it (Request.MayExtend), so policy and auditors read the facts without loading another request.
	Extends *Extension `json:"extends,omitempty"`
	// CorrelationID links the requests made from one submission for several entitlements, one request
	// each (a ULID, the same in each); empty for a request submitted alone. Context, not substance: it
	// stays out of the digest, so each request is reviewed for what it asks.
	CorrelationID string `json:"correlation_id,omitempty"`
}

// Extension records the grant an extension continues, at the moment the extension was submitted.
type Extension struct {
	// RequestID is the request whose grant is extended.
	RequestID string `json:"request_id"`
	// HeldSince is when the entitlement was first granted in the chain of extensions that ends with
	// RequestID: the start of the continuous access the catalogue's max_total bounds.
	HeldSince time.Time `json:"held_since"`
	// ExpiresAt is when the extended grant ends unless the extension is granted first.
	ExpiresAt time.Time `json:"expires_at"`
	// DurationSeconds is how long the extended grant was granted for (its effective duration).
	DurationSeconds int64 `json:"duration_seconds"`
}

// Withdrawn records that the requester withdrew the request before it was granted (emitted by intake).
type Withdrawn struct {
	Reason string `json:"reason,omitempty"`
}

// Outcome is the verdict of a policy decision.
type Outcome string

// Policy outcomes.
const (
	OutcomeDeny             Outcome = "deny"
	OutcomeApprovalRequired Outcome = "approval_required"
	OutcomeAutoApproved     Outcome = "auto_approved"
	OutcomeEmergency        Outcome = "emergency"
)

// Stage is one approval stage: MinApprovals distinct reviewers from any of Groups.
type Stage struct {
	Name         string   `json:"name"`
	Groups       []string `json:"groups"`
	MinApprovals int      `json:"min_approvals"`
}

// PostReview is the mandatory review after an emergency grant.
type PostReview struct {
	Groups   []string  `json:"groups"`
	Deadline time.Time `json:"deadline"`
}

// PolicyDecided records the policy engine's decision (emitted by policy).
type PolicyDecided struct {
	Outcome Outcome  `json:"outcome"`
	Reasons []string `json:"reasons"`
	Stages  []Stage  `json:"stages,omitempty"`
	// StagesOrdered says stage i+1 opens only once stage i is satisfied.
	StagesOrdered bool `json:"stages_ordered"`
	// EffectiveDurationSeconds is how long access will last once granted; never more than requested.
	EffectiveDurationSeconds int64 `json:"effective_duration_seconds"`
	// ApprovalDeadline ends the approval window of an approval_required decision.
	ApprovalDeadline *time.Time  `json:"approval_deadline,omitempty"`
	PostReview       *PostReview `json:"post_review,omitempty"`
	PolicyRevision   string      `json:"policy_revision"`
	InputDigest      string      `json:"input_digest"`
	// Input is the policy input exactly as evaluated (RFC 8785 canonical JSON, whose SHA-256 is
	// InputDigest), so the decision can be re-evaluated bit for bit, by a changed policy too. Absent
	// from decisions recorded before it was kept, and when policy could not build the input.
	Input jsontext.Value `json:"input,omitempty"`
}

// ReviewDecision is one reviewer's verdict.
type ReviewDecision string

// Review decisions.
const (
	ReviewApprove ReviewDecision = "approve"
	ReviewReject  ReviewDecision = "reject"
)

// Reviewed records one reviewer's decision on one stage (emitted by approval).
type Reviewed struct {
	Reviewer Principal      `json:"reviewer"`
	Stage    int            `json:"stage"`
	Decision ReviewDecision `json:"decision"`
	Comment  string         `json:"comment,omitempty"`
	// RequestDigest is the digest of the request the reviewer saw; it must match the submitted one.
	RequestDigest string `json:"request_digest"`
	// Via names who acted for the reviewer, when the review came with a token the reviewer did not
	// present themselves (its RFC 8693 act claim): grantline-notifier for Approve or Reject pressed in
	// Slack. The reviewer decided; Via records the path. Empty for the reviewer's own token.
	Via string `json:"via,omitempty"`
}

// Approved records that every stage is satisfied (emitted by approval).
type Approved struct {
	Approvers []string `json:"approvers"`
}

// Rejection reasons.
const (
	RejectedByReviewer = "reviewer"
	RejectedTimeout    = "timeout"
)

// Rejected records a rejection by a reviewer or the end of the approval window (emitted by approval).
type Rejected struct {
	Reason     string `json:"reason"`
	RejectedBy string `json:"rejected_by,omitempty"`
}

// GroupsFrom says where the requester's groups of a start check came from.
type GroupsFrom string

// Sources of the groups a start check evaluates.
const (
	// GroupsFromDirectory: the people directory as it was at the start.
	GroupsFromDirectory GroupsFrom = "directory"
	// GroupsFromSubmission: the groups the requester's token carried at submission, because the policy
	// service has no directory to ask; the catalogue, the locks and the policy are still those at the start.
	GroupsFromSubmission GroupsFrom = "submitted"
)

// StartChecked records policy's check of a request that asked for access from a later time (start_at),
// made at that time with the requester's groups, the catalogue and the locks as they were then (emitted
// by policy). Fulfilment grants such a request only after an allowed check; a check that is not allowed
// ends the request denied, and its Reasons say why (the policy's own, or the error that kept policy
// from deciding: it fails closed).
type StartChecked struct {
	// Allowed says whether the request may still be granted: policy, evaluated now, would let it through
	// with the approvals it already holds (Request.ApprovalsSatisfy). So an auto-approved or emergency
	// outcome allows it, a deny does not, and approval_required allows it only if the recorded approvals
	// satisfy Stages: a requester who left the group that made the request routine needs approvals that
	// were never given.
	Allowed bool     `json:"allowed"`
	Outcome Outcome  `json:"outcome"`
	Reasons []string `json:"reasons"`
	// Stages are the approval stages policy requires now, for an approval_required outcome.
	Stages []Stage `json:"stages,omitempty"`
	// RequesterGroups are the requester's groups the check evaluated, sorted; never null.
	RequesterGroups []string   `json:"requester_groups"`
	GroupsFrom      GroupsFrom `json:"groups_from"`
	PolicyRevision  string     `json:"policy_revision"`
	InputDigest     string     `json:"input_digest"`
	// Input is the policy input exactly as evaluated, as in PolicyDecided; absent when policy could not
	// build it.
	Input jsontext.Value `json:"input,omitempty"`
}

// PostReviewOutcome is the verdict of an emergency post-review.
type PostReviewOutcome string

// Post-review outcomes; a flagged emergency grant is revoked.
const (
	PostReviewRatified PostReviewOutcome = "ratified"
	PostReviewFlagged  PostReviewOutcome = "flagged"
)

// PostReviewed records the post-review of an emergency grant (emitted by approval).
type PostReviewed struct {
	Reviewer Principal         `json:"reviewer"`
	Outcome  PostReviewOutcome `json:"outcome"`
	Reason   string            `json:"reason,omitempty"`
}

// PostReviewOverdue records that nobody post-reviewed an emergency grant by its deadline (emitted by approval).
type PostReviewOverdue struct {
	Deadline time.Time `json:"deadline"`
}

// TaskPurpose says whether a manual task grants or revokes.
type TaskPurpose string

// Manual task purposes.
const (
	TaskGrant  TaskPurpose = "grant"
	TaskRevoke TaskPurpose = "revoke"
)

// TaskOpened records a manual fulfilment task for a system without an API (emitted by fulfilment).
type TaskOpened struct {
	TaskID          string      `json:"task_id"`
	Purpose         TaskPurpose `json:"purpose"`
	FulfillerGroups []string    `json:"fulfiller_groups"`
	Instructions    string      `json:"instructions,omitempty"`
	DueAt           time.Time   `json:"due_at"`
	// ContinuedBy, on a revoke task, is the request whose granted extension (issue 16) continues the
	// same access: the person carrying out the task must leave the access in place.
	ContinuedBy string `json:"continued_by,omitempty"`
}

// Observed is the state of the entitlement as read back from the target system.
type Observed struct {
	Present bool              `json:"present"`
	Detail  map[string]string `json:"detail,omitempty"`
}

// Granted records access that the target really shows (emitted by fulfilment).
type Granted struct {
	Connector string   `json:"connector"`
	TargetRef string   `json:"target_ref"`
	Observed  Observed `json:"observed"`
	// ExpiresAt is computed once, from the effective duration; nothing later extends it.
	ExpiresAt time.Time `json:"expires_at"`
	// Fulfiller is the service, or the person who completed a manual task.
	Fulfiller             string `json:"fulfiller"`
	TaskID                string `json:"task_id,omitempty"`
	CredentialFingerprint string `json:"credential_fingerprint,omitempty"`
}

// FulfilmentFailed records that fulfilment gave up on a grant (emitted by fulfilment): at once for a
// permanent failure, or once a transient one outlasted the retry time. It ends the request as failed;
// Permanent says whether the same request asked again could succeed.
type FulfilmentFailed struct {
	ErrorClass string `json:"error_class"`
	Message    string `json:"message"`
	Attempts   int    `json:"attempts"`
	Permanent  bool   `json:"permanent"`
}

// RevocationReason says why access ended.
type RevocationReason string

// Revocation reasons.
const (
	RevokeExpired      RevocationReason = "expired"
	RevokeEarly        RevocationReason = "early"
	RevokeReviewFailed RevocationReason = "review_failed"
	RevokeDrift        RevocationReason = "drift"
	// RevokeLocked ends access a lock covers (RevocationRequested.LockID names the lock).
	RevokeLocked RevocationReason = "locked"
	// RevokeReviewRevoked ends access an access review decided to revoke, or left unanswered under a
	// rule that revokes (RevocationRequested.CampaignID names the campaign).
	RevokeReviewRevoked RevocationReason = "review_revoked"
)

// RevocationRequested records a request to end access before expiry (emitted by revoker).
type RevocationRequested struct {
	By     string           `json:"by"`
	Reason RevocationReason `json:"reason"`
	Note   string           `json:"note,omitempty"`
	// LockID is the lock that ends the access, with reason locked.
	LockID string `json:"lock_id,omitempty"`
	// CampaignID is the access review that ends the access, with reason review_revoked.
	CampaignID string `json:"campaign_id,omitempty"`
}

// Expired records that a grant reached its expiry and the revoker's first attempt to revoke it failed,
// so the overdue grant stays visible while the attempts go on (emitted by revoker). A grant revoked at
// the first attempt has no expired event: its revoked (reason expired) says it all.
type Expired struct {
	ExpiresAt time.Time `json:"expires_at"`
}

// Revoked records access removed and the final state observed on the target (emitted by revoker).
type Revoked struct {
	Reason              RevocationReason `json:"reason"`
	Observed            Observed         `json:"observed"`
	CredentialDestroyed bool             `json:"credential_destroyed,omitempty"`
	CredentialRotated   bool             `json:"credential_rotated,omitempty"`
}

// RevocationFailed records a failed revocation attempt; retries continue until it succeeds (emitted by revoker).
type RevocationFailed struct {
	Attempts     int       `json:"attempts"`
	OverdueSince time.Time `json:"overdue_since"`
	ErrorClass   string    `json:"error_class"`
	Message      string    `json:"message"`
}

// DriftKind says how a target differs from the evidence.
type DriftKind string

// Drift kinds.
const (
	// DriftAfterRevocation: the target shows access of a grant whose revocation was recorded.
	DriftAfterRevocation DriftKind = "present_after_revocation"
	// DriftMissing: the target lacks access of a live grant (a DBA dropped its role).
	DriftMissing DriftKind = "missing"
	// DriftUnexplained: the target shows Grantline-shaped access that no request explains. It is a
	// finding of its own, under FindingID, not an event of any request.
	DriftUnexplained DriftKind = "unexplained"
)

// DriftAction says what the reconciler did about drift.
type DriftAction string

// Drift actions.
const (
	// DriftRevoke: the access is revoked again; a revoked event with reason drift follows.
	DriftRevoke DriftAction = "revoke"
	// DriftRecorded: recorded for people to act on (the owners are told through the event).
	DriftRecorded DriftAction = "recorded"
)

// DriftDetected records a difference between what a target shows and what the evidence explains, and
// what was done about it (emitted by revoker, its reconciler).
type DriftDetected struct {
	Kind      DriftKind `json:"kind"`
	Connector string    `json:"connector"`
	// TargetRef names the access on the target (a connector.Holding's Ref, or the grant's target_ref).
	TargetRef string `json:"target_ref"`
	// Observed is what the target shows, its evidence.
	Observed Observed    `json:"observed"`
	Action   DriftAction `json:"action"`
}

func (Submitted) EventType() Type           { return TypeSubmitted }
func (Withdrawn) EventType() Type           { return TypeWithdrawn }
func (PolicyDecided) EventType() Type       { return TypePolicyDecided }
func (Reviewed) EventType() Type            { return TypeReviewed }
func (Approved) EventType() Type            { return TypeApproved }
func (Rejected) EventType() Type            { return TypeRejected }
func (StartChecked) EventType() Type        { return TypeStartChecked }
func (PostReviewed) EventType() Type        { return TypePostReviewed }
func (PostReviewOverdue) EventType() Type   { return TypePostReviewOverdue }
func (TaskOpened) EventType() Type          { return TypeTaskOpened }
func (Granted) EventType() Type             { return TypeGranted }
func (FulfilmentFailed) EventType() Type    { return TypeFulfilmentFailed }
func (RevocationRequested) EventType() Type { return TypeRevocationRequested }
func (Expired) EventType() Type             { return TypeExpired }
func (Revoked) EventType() Type             { return TypeRevoked }
func (RevocationFailed) EventType() Type    { return TypeRevocationFailed }
func (DriftDetected) EventType() Type       { return TypeDriftDetected }

// newPayload returns a pointer to a zero payload for t, for decoding.
func newPayload(t Type) (Payload, bool) {
	switch t {
	case TypeLockPlaced:
		return &LockPlaced{}, true
	case TypeLockRemoved:
		return &LockRemoved{}, true
	case TypeCampaignOpened:
		return &CampaignOpened{}, true
	case TypeCampaignReminded:
		return &CampaignReminded{}, true
	case TypeCampaignDecided:
		return &CampaignDecided{}, true
	case TypeCampaignEscalated:
		return &CampaignEscalated{}, true
	case TypeCampaignClosed:
		return &CampaignClosed{}, true
	case TypeSubmitted:
		return &Submitted{}, true
	case TypeWithdrawn:
		return &Withdrawn{}, true
	case TypePolicyDecided:
		return &PolicyDecided{}, true
	case TypeReviewed:
		return &Reviewed{}, true
	case TypeApproved:
		return &Approved{}, true
	case TypeRejected:
		return &Rejected{}, true
	case TypeStartChecked:
		return &StartChecked{}, true
	case TypePostReviewed:
		return &PostReviewed{}, true
	case TypePostReviewOverdue:
		return &PostReviewOverdue{}, true
	case TypeTaskOpened:
		return &TaskOpened{}, true
	case TypeGranted:
		return &Granted{}, true
	case TypeFulfilmentFailed:
		return &FulfilmentFailed{}, true
	case TypeRevocationRequested:
		return &RevocationRequested{}, true
	case TypeExpired:
		return &Expired{}, true
	case TypeRevoked:
		return &Revoked{}, true
	case TypeRevocationFailed:
		return &RevocationFailed{}, true
	case TypeDriftDetected:
		return &DriftDetected{}, true
	}
	return nil, false
}
