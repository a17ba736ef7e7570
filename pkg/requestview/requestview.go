// Package requestview is how Grantline shows one request over HTTP: its substance, its decision,
// reviews, grant and revocation, as folded from its events. Intake (read-your-writes from the stream)
// and the read side (from PostgreSQL) answer with the same shape, so one client type reads both.
package requestview

import (
	"time"

	"github.com/grantline/grantline/pkg/events"
)

// View is a request as the API shows it; LastSeq is the stream sequence of the last event it reflects.
type View struct {
	ID              string                `json:"id"`
	Status          events.Status         `json:"status"`
	Version         int                   `json:"version"`
	Requester       events.Principal      `json:"requester"`
	Subject         events.RequestSubject `json:"subject"`
	Entitlement     string                `json:"entitlement"`
	Justification   string                `json:"justification"`
	Ticket          string                `json:"ticket,omitempty"`
	DurationSeconds int64                 `json:"duration_seconds"`
	StartAt         *time.Time            `json:"start_at,omitempty"`
	Emergency       bool                  `json:"emergency"`
	Channel         string                `json:"channel"`
	SubmittedAt     time.Time             `json:"submitted_at"`
	RequestDigest   string                `json:"request_digest"`
	// Extends is the active grant this request extends, as it was when the extension was submitted.
	Extends *events.Extension `json:"extends,omitempty"`
	// CorrelationID links the requests submitted together for several entitlements.
	CorrelationID string                `json:"correlation_id,omitempty"`
	Decision      *events.PolicyDecided `json:"decision,omitempty"`
	Reviews       []events.Reviewed     `json:"reviews,omitempty"`
	Approvers     []string              `json:"approvers,omitempty"`
	Rejection     *events.Rejected      `json:"rejection,omitempty"`
	// StartCheck is policy's check at the start of a request that asked for a later start.
	StartCheck    *events.StartChecked     `json:"start_check,omitempty"`
	Grant         *events.Granted          `json:"grant,omitempty"`
	RevocationDue string                   `json:"revocation_due,omitempty"`
	Revocation    *events.Revoked          `json:"revocation,omitempty"`
	Failure       *events.FulfilmentFailed `json:"failure,omitempty"`
	PostReview    *events.PostReviewed     `json:"post_review,omitempty"`
	// Drift is what the revoker's reconciler found on the target against the request's evidence.
	Drift   []events.DriftDetected `json:"drift,omitempty"`
	LastSeq uint64                 `json:"last_seq"`
}

// Of shows request id as folded in r, submitted at submittedAt, up to stream sequence lastSeq.
func Of(id string, r *events.Request, submittedAt time.Time, lastSeq uint64) View {
	s := r.Submitted()
	v := View{
		ID: id, Status: r.Status(), Version: r.Version(), Requester: s.Requester, Subject: s.Subject,
		Entitlement: s.Entitlement, Justification: s.Justification, Ticket: s.Ticket,
		DurationSeconds: s.DurationSeconds, StartAt: s.StartAt, Emergency: s.Emergency, Channel: s.Channel,
		RequestDigest: s.RequestDigest, Extends: s.Extends, CorrelationID: s.CorrelationID, Reviews: r.Reviews(), Approvers: r.Approvers(), Rejection: r.Rejection(),
		StartCheck: r.StartCheck(), Grant: r.Grant(), RevocationDue: string(r.RevocationDue()), Revocation: r.Revoked(), Failure: r.Failure(),
		PostReview: r.PostReview(), Drift: r.Drift(), SubmittedAt: submittedAt, LastSeq: lastSeq,
	}
	if d := r.Decision(); d.Outcome != "" {
		v.Decision = &d
	}
	return v
}
