package approval

import (
	"slices"
	"time"

	"github.com/grantline/grantline/pkg/events"
)

// Kinds of work a request can await from reviewers.
const (
	AwaitsReview     = "review"
	AwaitsPostReview = "post_review"
)

// Slot is one thing a request awaits from the members of some groups: approvals in an open stage, or
// the post-review of an emergency grant (Stage -1).
type Slot struct {
	Kind         string
	Stage        int
	StageName    string
	Groups       []string
	MinApprovals int
	Approvals    int
	Deadline     *time.Time
	Overdue      bool
}

// PostReviewStage is the Stage of a post-review slot.
const PostReviewStage = -1

// Awaiting lists what req awaits from reviewers now, in stage order: a slot per open stage of a request
// pending approval, or the post-review slot of an emergency grant that has none yet; nothing otherwise.
// It is what the review inbox keeps per request.
func Awaiting(req *events.Request) []Slot {
	d := req.Decision()
	if req.PostReviewOpen() {
		deadline := d.PostReview.Deadline
		return []Slot{{Kind: AwaitsPostReview, Stage: PostReviewStage, StageName: "post-review",
			Groups: slices.Clone(d.PostReview.Groups), MinApprovals: 1, Deadline: &deadline, Overdue: req.PostReviewOverdue()}}
	}
	if req.Status() != events.StatusPendingApproval {
		return nil
	}
	approvals := map[int]int{}
	for _, rv := range req.Reviews() {
		if rv.Decision == events.ReviewApprove {
			approvals[rv.Stage]++
		}
	}
	var slots []Slot
	for _, i := range req.OpenStages() {
		st := d.Stages[i]
		slots = append(slots, Slot{Kind: AwaitsReview, Stage: i, StageName: st.Name, Groups: slices.Clone(st.Groups),
			MinApprovals: st.MinApprovals, Approvals: approvals[i], Deadline: d.ApprovalDeadline})
	}
	return slots
}

// Excluded are the people who may not act on req's slots whatever their groups: the requester, the
// subject, and everyone who already reviewed it.
func Excluded(req *events.Request) []string {
	s := req.Submitted()
	out := []string{s.Requester.ID, s.Subject.ID}
	for _, rv := range req.Reviews() {
		out = append(out, rv.Reviewer.ID)
	}
	if pr := req.PostReview(); pr != nil {
		out = append(out, pr.Reviewer.ID)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Snapshot is a request as of the stream sequence of its last event: what the inbox projection
// writes, and the version its rows then reflect.
type Snapshot struct {
	Request *events.Request
	Seq     uint64
}

// Item is one thing awaiting a reviewer, as the review inbox lists it: the request's substance (so the
// reviewer can judge it and bind the review to its digest) and the slot the reviewer would fill.
type Item struct {
	RequestID       string                `json:"request_id"`
	Kind            string                `json:"kind"`
	Stage           int                   `json:"stage"`
	StageName       string                `json:"stage_name"`
	Groups          []string              `json:"groups"`
	MinApprovals    int                   `json:"min_approvals"`
	Approvals       int                   `json:"approvals"`
	Deadline        *time.Time            `json:"deadline,omitempty"`
	Overdue         bool                  `json:"overdue,omitempty"`
	Requester       string                `json:"requester"`
	Subject         events.RequestSubject `json:"subject"`
	Entitlement     string                `json:"entitlement"`
	Justification   string                `json:"justification"`
	Ticket          string                `json:"ticket,omitempty"`
	DurationSeconds int64                 `json:"duration_seconds"`
	Emergency       bool                  `json:"emergency"`
	RequestDigest   string                `json:"request_digest"`
	// CorrelationID links the requests submitted together for several entitlements, so a reviewer
	// judges them side by side; empty for a request submitted alone.
	CorrelationID string `json:"correlation_id,omitempty"`
}
