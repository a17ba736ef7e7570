package query

import (
	"slices"
	"time"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/requestview"
	"github.com/grantline/grantline/pkg/visibility"
)

// View is a request as the read side shows it (the same shape intake answers with).
type View = requestview.View

// NewView shows the verified part of a history.
func NewView(h *History) View { return requestview.Of(h.ID, h.Request, h.SubmittedAt, h.LastSeq) }

// Grant is access a request was granted, active or past: what, for whom, on which target, observed in
// which state when granted and after revocation, and on whose decision.
type Grant struct {
	RequestID   string                `json:"request_id"`
	Requester   string                `json:"requester"`
	Subject     events.RequestSubject `json:"subject"`
	Entitlement string                `json:"entitlement"`
	Emergency   bool                  `json:"emergency"`
	Connector   string                `json:"connector"`
	TargetRef   string                `json:"target_ref"`
	Fulfiller   string                `json:"fulfiller"`
	TaskID      string                `json:"task_id,omitempty"`
	// Observed is the entitlement as read back from the target when it was granted.
	Observed  events.Observed `json:"observed"`
	GrantedAt time.Time       `json:"granted_at"`
	ExpiresAt time.Time       `json:"expires_at"`
	// RevocationDue says why access must end, once it must ("expired", "early", …).
	RevocationDue    string     `json:"revocation_due,omitempty"`
	RevokedAt        *time.Time `json:"revoked_at,omitempty"`
	RevocationReason string     `json:"revocation_reason,omitempty"`
	// ObservedAfter is the entitlement as read back from the target after revocation.
	ObservedAfter  *events.Observed `json:"observed_after,omitempty"`
	Outcome        events.Outcome   `json:"outcome"`
	PolicyRevision string           `json:"policy_revision"`
	Approvers      []string         `json:"approvers"`
	// Active is true until the revocation is recorded.
	Active bool `json:"active"`
}

// NewGrant shows the grant of a history, and false if the verified part holds none.
func NewGrant(h *History) (Grant, bool) {
	r := h.Request
	g := r.Grant()
	if g == nil {
		return Grant{}, false
	}
	s, d := r.Submitted(), r.Decision()
	out := Grant{
		RequestID: h.ID, Requester: s.Requester.ID, Subject: s.Subject, Entitlement: s.Entitlement, Emergency: s.Emergency,
		Connector: g.Connector, TargetRef: g.TargetRef, Fulfiller: g.Fulfiller, TaskID: g.TaskID, Observed: g.Observed,
		GrantedAt: r.GrantedAt().UTC(), ExpiresAt: g.ExpiresAt.UTC(), RevocationDue: string(r.RevocationDue()),
		Outcome: d.Outcome, PolicyRevision: d.PolicyRevision, Approvers: nonNil(r.Approvers()), Active: true,
	}
	if rv := r.Revoked(); rv != nil {
		at := h.RevokedAt
		out.RevokedAt, out.RevocationReason, out.ObservedAfter, out.Active = &at, string(rv.Reason), &rv.Observed, false
	}
	return out, true
}

// Finding is Grantline-shaped access a target showed that no request explains, as the revoker's
// reconciler recorded it under its finding ID (events.FindingID).
type Finding struct {
	ID        string          `json:"id"`
	Connector string          `json:"connector"`
	TargetRef string          `json:"target_ref"`
	Observed  events.Observed `json:"observed"`
	FoundAt   time.Time       `json:"found_at"`
	LastSeq   uint64          `json:"last_seq"`
}

// NewFinding shows the finding of a history, and false if the history is a request's.
func NewFinding(h *History) (Finding, bool) {
	d := h.Request.Drift()
	if h.Request.Status() != events.StatusFinding || len(d) == 0 {
		return Finding{}, false
	}
	return Finding{ID: h.ID, Connector: d[0].Connector, TargetRef: d[0].TargetRef, Observed: d[0].Observed,
		FoundAt: h.SubmittedAt, LastSeq: h.LastSeq}, true
}

// Holding is a grant that held an entitlement at the instant asked about. BeyondExpiry marks one past its
// expiry whose revocation was not recorded by then: the target was last seen granting it, so it counts.
type Holding struct {
	Grant        `json:",inline"`
	BeyondExpiry bool `json:"beyond_expiry,omitempty"`
}

// HeldAt reports whether grant g held its entitlement at instant at, judged at now: from the grant up
// to the recorded revocation; without one, up to the expiry — and beyond it for any instant up to now,
// since nothing has observed the access removed (an overdue revocation is exactly what an auditor asking
// "who had it" must see). beyond reports the latter case.
func HeldAt(g Grant, at, now time.Time) (held, beyond bool) {
	switch {
	case at.Before(g.GrantedAt):
		return false, false
	case g.RevokedAt != nil:
		return at.Before(*g.RevokedAt), false
	case at.Before(g.ExpiresAt):
		return true, false
	}
	return !at.After(now), !at.After(now)
}

// ReviewGroups are the groups that decide on a request: those of its approval stages and of its
// post-review (visibility.ReviewGroups), sorted, each once.
func ReviewGroups(r *events.Request) []string {
	return set(visibility.ReviewGroups(r))
}

// OpenGroups are the groups of the stages that accept approvals now, sorted, each once; none unless the
// request awaits review.
func OpenGroups(r *events.Request) []string {
	if r.Status() != events.StatusPendingApproval {
		return []string{}
	}
	var gs []string
	for _, i := range r.OpenStages() {
		gs = append(gs, r.Decision().Stages[i].Groups...)
	}
	return set(gs)
}

// Reviewers are the people who reviewed the request's approval stages, in order.
func Reviewers(r *events.Request) []string {
	out := []string{}
	for _, rv := range r.Reviews() {
		out = append(out, rv.Reviewer.ID)
	}
	return out
}

// AwaitsReviewBy reports whether the request awaits a review that person, a member of groups, may give:
// it is pending approval, one of its open stages takes one of their groups, and separation of duties
// lets them (not the requester, not the subject, not a reviewer of it already).
func AwaitsReviewBy(r *events.Request, person string, groups []string) bool {
	return r.Status() == events.StatusPendingApproval && r.MayReview(person) == nil &&
		slices.ContainsFunc(OpenGroups(r), func(g string) bool { return slices.Contains(groups, g) })
}

func set(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	out = slices.Compact(out)
	if out == nil {
		out = []string{}
	}
	return out
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
