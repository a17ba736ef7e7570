// Package console is the web console's own reading of what the services answer: a request's
// timeline in words (Timeline), what each status means to a person (StatusLabel), and an auditor's
// reading of a request's stored events (Evidence). It decides nothing: every fact comes from the
// services' answers, and every action the console offers is the services' to allow or refuse.
package console

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/requestview"
)

// State is where a step of a timeline stands.
type State string

// The states of a step.
const (
	Done    State = "done"    // it happened
	Current State = "current" // the request is waiting on it now
	Pending State = "pending" // it comes later, if all goes well
	Failed  State = "failed"  // it happened, and ended the request (denied, rejected, failed)
)

// Step is one moment of a request's life.
type Step struct {
	Title string
	State State
	// When is the step's time, when the view knows it.
	When *time.Time
	// Details are facts of the step, one sentence each.
	Details []string
}

// StatusLabel says what status means to the person reading.
func StatusLabel(s events.Status) string {
	switch s {
	case events.StatusSubmitted:
		return "Submitted: awaiting policy"
	case events.StatusDenied:
		return "Denied by policy"
	case events.StatusPendingApproval:
		return "Awaiting approval"
	case events.StatusApproved:
		return "Approved: awaiting fulfilment"
	case events.StatusGranted:
		return "Granted"
	case events.StatusRevoked:
		return "Ended: access revoked"
	case events.StatusRejected:
		return "Rejected"
	case events.StatusWithdrawn:
		return "Withdrawn"
	case events.StatusFailed:
		return "Fulfilment failed"
	}
	return string(s)
}

// Duration writes a number of seconds the way people read one: "2h", "1h30m", "45s".
func Duration(seconds int64) string {
	d := time.Duration(seconds) * time.Second
	s := d.String()
	s = strings.Replace(s, "m0s", "m", 1)
	return strings.Replace(s, "h0m", "h", 1)
}

// Timeline tells v's life as steps, in the order they happen: the submission, policy's decision, each
// approval stage and who approved it, policy's check at a later start the request asked for, the grant
// with what the target showed, the revocation with the
// final state, what the revoker's reconciler found on the target against it (drift); and for an
// emergency, its post-review. Steps still to come are Pending; the one the
// request waits on is Current.
func Timeline(v requestview.View) []Step {
	submitted := v.SubmittedAt
	steps := []Step{{Title: "Submitted", State: Done, When: &submitted, Details: submission(v)}}
	d := v.Decision
	if d == nil {
		if v.Status == events.StatusWithdrawn {
			return append(steps, Step{Title: "Withdrawn by the requester", State: Failed})
		}
		return append(steps, Step{Title: "Policy decides", State: Current, Details: []string{"Policy has not decided yet."}})
	}
	steps = append(steps, decision(*d))
	if d.Outcome == events.OutcomeDeny {
		return steps
	}
	steps = append(steps, stages(v, *d)...)
	if v.Rejection != nil {
		r := Step{Title: "Rejected", State: Failed, Details: []string{v.Rejection.Reason}}
		if v.Rejection.RejectedBy != "" {
			r.Details = append(r.Details, "Rejected by "+v.Rejection.RejectedBy+".")
		}
		return append(steps, r)
	}
	if s, ok := startCheck(v); ok {
		steps = append(steps, s)
		switch s.State {
		case Failed:
			return steps
		case Current, Pending:
			if v.Status == events.StatusWithdrawn {
				return append(steps, Step{Title: "Withdrawn by the requester", State: Failed})
			}
			return append(steps, Step{Title: "Granted on the target", State: Pending})
		}
	}
	if v.Status == events.StatusWithdrawn {
		return append(steps, Step{Title: "Withdrawn by the requester", State: Failed})
	}
	steps = append(steps, grant(v)...)
	for _, dr := range v.Drift {
		steps = append(steps, drift(dr))
	}
	if d.PostReview != nil {
		steps = append(steps, postReview(v, *d.PostReview))
	}
	return steps
}

func submission(v requestview.View) []string {
	out := []string{fmt.Sprintf("%s asked for %s for %s.", v.Requester.ID, v.Entitlement, Duration(v.DurationSeconds))}
	if v.Subject.ID != v.Requester.ID || v.Subject.Kind != events.SubjectHuman {
		s := fmt.Sprintf("For %s %s", strings.ReplaceAll(string(v.Subject.Kind), "_", " "), v.Subject.ID)
		if v.Subject.Owner != "" {
			s += ", owned by " + v.Subject.Owner
		}
		out = append(out, s+".")
	}
	if v.Ticket != "" {
		out = append(out, "Ticket "+v.Ticket+".")
	}
	if v.StartAt != nil {
		out = append(out, "From "+v.StartAt.UTC().Format(TimeLayout)+".")
	}
	if v.Emergency {
		out = append(out, "Emergency (break-glass) request.")
	}
	return out
}

// TimeLayout is how the console writes a time: UTC, to the second.
const TimeLayout = "2006-01-02 15:04:05 UTC"

func decision(d events.PolicyDecided) Step {
	s := Step{State: Done, Details: slices.Clone(d.Reasons)}
	switch d.Outcome {
	case events.OutcomeDeny:
		s.Title, s.State = "Policy denied it", Failed
	case events.OutcomeApprovalRequired:
		s.Title = "Policy requires approval"
		if d.ApprovalDeadline != nil {
			s.Details = append(s.Details, "Reviewers have until "+d.ApprovalDeadline.UTC().Format(TimeLayout)+".")
		}
	case events.OutcomeAutoApproved:
		s.Title = "Policy approved it without review"
	case events.OutcomeEmergency:
		s.Title = "Emergency access: granted without approval, reviewed afterwards"
	default:
		s.Title = "Policy decided " + string(d.Outcome)
	}
	if d.EffectiveDurationSeconds > 0 {
		s.Details = append(s.Details, "Access for "+Duration(d.EffectiveDurationSeconds)+".")
	}
	s.Details = append(s.Details, "Policy revision "+d.PolicyRevision+".")
	return s
}

// stages are the approval stages: each with its groups, its approvals so far and who gave them.
func stages(v requestview.View, d events.PolicyDecided) []Step {
	var out []Step
	earlierOpen := false
	for i, st := range d.Stages {
		s := Step{Title: fmt.Sprintf("Stage %d, %s: %d approval(s) from %s", i+1, st.Name, st.MinApprovals, strings.Join(st.Groups, ", "))}
		approvals := 0
		rejected := false
		for _, r := range v.Reviews {
			if r.Stage != i {
				continue
			}
			line := r.Reviewer.ID
			if r.Decision == events.ReviewApprove {
				approvals++
				line = "Approved by " + line
			} else {
				rejected = true
				line = "Rejected by " + line
			}
			if r.Via != "" {
				// A delegated review (pressed in Slack): the reviewer decided, the notifier carried it.
				line += " via " + r.Via
			}
			if r.Comment != "" {
				line += ": " + r.Comment
			}
			s.Details = append(s.Details, line)
		}
		switch {
		case rejected:
			s.State = Failed
		case approvals >= st.MinApprovals:
			s.State = Done
		case v.Status == events.StatusPendingApproval && !(d.StagesOrdered && earlierOpen):
			s.State = Current
			s.Details = append(s.Details, fmt.Sprintf("%d of %d so far.", approvals, st.MinApprovals))
		default:
			s.State = Pending
		}
		earlierOpen = earlierOpen || s.State != Done
		out = append(out, s)
	}
	return out
}

// startCheck is policy's check at the start of a request that asked for a later start: due, passed, or
// failed (the request denied, with why). False for a request without a later start, and for one granted
// before start checks existed.
func startCheck(v requestview.View) (Step, bool) {
	c := v.StartCheck
	if v.StartAt == nil || (c == nil && v.Grant != nil) {
		return Step{}, false
	}
	start := v.StartAt.UTC()
	if c == nil {
		s := Step{Title: "Policy checks it again at its start", State: Pending, When: &start,
			Details: []string{"With the requester's groups, the catalogue and the locks as they are then."}}
		if v.Status == events.StatusApproved {
			s.State = Current
		}
		return s, true
	}
	s := Step{Title: "Checked again at its start: still allowed", State: Done, When: &start, Details: slices.Clone(c.Reasons)}
	if !c.Allowed {
		s.Title, s.State = "Checked again at its start: no longer allowed, not granted", Failed
	}
	groups := "no groups"
	if len(c.RequesterGroups) > 0 {
		groups = strings.Join(c.RequesterGroups, ", ")
	}
	s.Details = append(s.Details, fmt.Sprintf("The requester's groups then (from the %s): %s.", c.GroupsFrom, groups),
		"Policy revision "+c.PolicyRevision+".")
	return s, true
}

// grant is what fulfilment and the revoker did: granted (or failed), then revoked or expiring.
func grant(v requestview.View) []Step {
	g := v.Grant
	if g == nil {
		switch {
		case v.Failure != nil:
			f := v.Failure
			return []Step{{Title: "Fulfilment failed", State: Failed, Details: []string{
				fmt.Sprintf("%s: %s (after %d attempt(s)).", f.ErrorClass, f.Message, f.Attempts)}}}
		case v.Status == events.StatusApproved || v.Decision.Outcome != events.OutcomeApprovalRequired:
			return []Step{{Title: "Fulfilment grants it on the target", State: Current}}
		}
		return []Step{{Title: "Granted on the target", State: Pending}}
	}
	granted := Step{Title: "Granted on " + g.TargetRef, State: Done, Details: []string{
		observed("The target shows it", g.Observed),
		"Granted by " + g.Fulfiller + " through " + g.Connector + ".",
		"Expires at " + g.ExpiresAt.UTC().Format(TimeLayout) + ".",
	}}
	if g.CredentialFingerprint != "" {
		granted.Details = append(granted.Details, "A credential was issued (fingerprint "+g.CredentialFingerprint+"); it can be retrieved once.")
	}
	if len(v.Approvers) > 0 {
		granted.Details = append(granted.Details, "Approved by "+strings.Join(v.Approvers, ", ")+".")
	}
	steps := []Step{granted}
	switch r := v.Revocation; {
	case r != nil:
		end := Step{Title: "Revoked (" + revocationReason(r.Reason) + ")", State: Done, Details: []string{observed("The target shows it", r.Observed)}}
		if r.CredentialDestroyed {
			end.Details = append(end.Details, "The credential was destroyed.")
		}
		if r.CredentialRotated {
			end.Details = append(end.Details, "The credential was rotated.")
		}
		steps = append(steps, end)
	case v.RevocationDue != "":
		steps = append(steps, Step{Title: "Revocation due (" + revocationReason(events.RevocationReason(v.RevocationDue)) + ")", State: Current,
			Details: []string{"The revoker is removing the access."}})
	default:
		at := g.ExpiresAt
		steps = append(steps, Step{Title: "Expires", State: Pending, When: &at, Details: []string{"The revoker removes the access at its expiry."}})
	}
	return steps
}

// drift is one difference the reconciler found between the target and the request's evidence.
func drift(d events.DriftDetected) Step {
	s := Step{State: Failed, Details: []string{observed("The target showed it", d.Observed)}}
	switch d.Kind {
	case events.DriftAfterRevocation:
		s.Title = "Drift: the access was back on " + d.TargetRef + " after its revocation"
		s.Details = append(s.Details, "The revoker revokes it again (reason drift).")
	default:
		s.Title = "Drift: the access is missing on " + d.TargetRef
		s.Details = append(s.Details, "Recorded for the entitlement's owners; the grant stands until it ends.")
	}
	return s
}

func postReview(v requestview.View, pr events.PostReview) Step {
	deadline := pr.Deadline
	s := Step{Title: "Post-review by " + strings.Join(pr.Groups, ", "), When: &deadline}
	switch p := v.PostReview; {
	case p == nil:
		s.State = Current
		s.Details = []string{"Due by " + deadline.UTC().Format(TimeLayout) + "."}
	case p.Outcome == events.PostReviewFlagged:
		s.State = Failed
		s.Details = []string{"Flagged by " + p.Reviewer.ID + ": " + p.Reason}
	default:
		s.State = Done
		s.Details = []string{"Ratified by " + p.Reviewer.ID + "."}
	}
	return s
}

func revocationReason(r events.RevocationReason) string {
	switch r {
	case events.RevokeExpired:
		return "expired"
	case events.RevokeEarly:
		return "ended early"
	case events.RevokeReviewFailed:
		return "post-review flagged it"
	case events.RevokeDrift:
		return "drift on the target"
	case events.RevokeLocked:
		return "a lock covers it"
	case events.RevokeReviewRevoked:
		return "an access review revoked it"
	}
	return string(r)
}

// observed writes what a connector read back from the target.
func observed(lead string, o events.Observed) string {
	s := lead + " absent"
	if o.Present {
		s = lead + " present"
	}
	if len(o.Detail) == 0 {
		return s + "."
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(o.Detail)) {
		parts = append(parts, k+"="+o.Detail[k])
	}
	return s + " (" + strings.Join(parts, ", ") + ")."
}
