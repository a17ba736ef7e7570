package console

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/grantline/grantline/pkg/events"
	"github.com/grantline/grantline/pkg/requestview"
)

var t0 = time.Date(2030, 1, 2, 9, 0, 0, 0, time.UTC)

// The request of the README's second example: alice asks for payments-admin, which needs its owners
// and then security.
func paymentsAdmin() requestview.View {
	return requestview.View{ID: "01J00000000000000000000000", Status: events.StatusPendingApproval, Version: 2,
		Requester: events.Principal{ID: "alice", Groups: []string{"engineers"}}, Subject: events.RequestSubject{Kind: events.SubjectHuman, ID: "alice"},
		Entitlement: "payments-admin", Justification: "INC-42 stuck migration", Ticket: "INC-42", DurationSeconds: 3600, SubmittedAt: t0,
		Decision: &events.PolicyDecided{Outcome: events.OutcomeApprovalRequired, Reasons: []string{"payments-admin is high risk"},
			Stages:        []events.Stage{{Name: "owners", Groups: []string{"payments-owners"}, MinApprovals: 1}, {Name: "security", Groups: []string{"security"}, MinApprovals: 1}},
			StagesOrdered: true, EffectiveDurationSeconds: 3600, PolicyRevision: "sha256:abc"}}
}

// scheduledView is alice's routine analytics-read from an hour after submission, approved without
// review, with policy's check at the start (nil before it).
func scheduledView(check *events.StartChecked) requestview.View {
	start := t0.Add(time.Hour)
	return requestview.View{ID: "01J00000000000000000000001", Status: events.StatusApproved, Version: 2,
		Requester: events.Principal{ID: "alice", Groups: []string{"engineers"}}, Subject: events.RequestSubject{Kind: events.SubjectHuman, ID: "alice"},
		Entitlement: "analytics-read", Justification: "weekly report", DurationSeconds: 3600, StartAt: &start, SubmittedAt: t0,
		Decision: &events.PolicyDecided{Outcome: events.OutcomeAutoApproved, Reasons: []string{"low risk"}, EffectiveDurationSeconds: 3600,
			PolicyRevision: "sha256:abc"}, StartCheck: check}
}

func review(who string, stage int, d events.ReviewDecision, comment string) events.Reviewed {
	return events.Reviewed{Reviewer: events.Principal{ID: who}, Stage: stage, Decision: d, Comment: comment}
}

func granted(v requestview.View) requestview.View {
	v.Status = events.StatusGranted
	v.Approvers = []string{"bob", "carol"}
	v.Grant = &events.Granted{Connector: "postgres", TargetRef: "postgres/payments role payments_admin",
		Observed: events.Observed{Present: true, Detail: map[string]string{"member_of": "payments_admin"}}, ExpiresAt: t0.Add(2 * time.Hour), Fulfiller: "service:fulfilment"}
	return v
}

// TestTimeline: each row is a request at some point of its life, and the steps the console tells
// (title and state, in order), with facts a step must state.
func TestTimeline(t *testing.T) {
	tests := []struct {
		name  string
		view  func() requestview.View
		steps []string // "state: title"
		facts []string // each must appear in some step's details
	}{
		{name: "just submitted: policy has not decided",
			view: func() requestview.View {
				v := paymentsAdmin()
				v.Decision, v.Status = nil, events.StatusSubmitted
				return v
			},
			steps: []string{"done: Submitted", "current: Policy decides"}, facts: []string{"alice asked for payments-admin for 1h.", "Ticket INC-42."}},
		{name: "withdrawn before policy decided",
			view: func() requestview.View {
				v := paymentsAdmin()
				v.Decision, v.Status = nil, events.StatusWithdrawn
				return v
			},
			steps: []string{"done: Submitted", "failed: Withdrawn by the requester"}},
		{name: "denied by policy, with its reasons",
			view: func() requestview.View {
				v := paymentsAdmin()
				v.Status = events.StatusDenied
				v.Decision = &events.PolicyDecided{Outcome: events.OutcomeDeny, Reasons: []string{"payments-admin allows at most 7200 seconds"}, PolicyRevision: "sha256:abc"}
				return v
			},
			steps: []string{"done: Submitted", "failed: Policy denied it"}, facts: []string{"payments-admin allows at most 7200 seconds", "Policy revision sha256:abc."}},
		{name: "ordered stages, nobody approved yet: only the first is open",
			view: paymentsAdmin,
			steps: []string{"done: Submitted", "done: Policy requires approval", "current: Stage 1, owners: 1 approval(s) from payments-owners",
				"pending: Stage 2, security: 1 approval(s) from security", "pending: Granted on the target"},
			facts: []string{"payments-admin is high risk", "0 of 1 so far."}},
		{name: "bob approved the owners' stage: security's is open",
			view: func() requestview.View {
				v := paymentsAdmin()
				v.Reviews = []events.Reviewed{review("bob", 0, events.ReviewApprove, "owner ok")}
				return v
			},
			steps: []string{"done: Submitted", "done: Policy requires approval", "done: Stage 1, owners: 1 approval(s) from payments-owners",
				"current: Stage 2, security: 1 approval(s) from security", "pending: Granted on the target"},
			facts: []string{"Approved by bob: owner ok"}},
		{name: "bob approved the owners' stage from Slack: the stage says the notifier carried his review",
			view: func() requestview.View {
				v := paymentsAdmin()
				rv := review("bob", 0, events.ReviewApprove, "reviewed in Slack")
				rv.Via = "grantline-notifier"
				v.Reviews = []events.Reviewed{rv}
				return v
			},
			steps: []string{"done: Submitted", "done: Policy requires approval", "done: Stage 1, owners: 1 approval(s) from payments-owners",
				"current: Stage 2, security: 1 approval(s) from security", "pending: Granted on the target"},
			facts: []string{"Approved by bob via grantline-notifier: reviewed in Slack"}},
		{name: "unordered stages are open together",
			view: func() requestview.View { v := paymentsAdmin(); v.Decision.StagesOrdered = false; return v },
			steps: []string{"done: Submitted", "done: Policy requires approval", "current: Stage 1, owners: 1 approval(s) from payments-owners",
				"current: Stage 2, security: 1 approval(s) from security", "pending: Granted on the target"}},
		{name: "carol rejected it",
			view: func() requestview.View {
				v := paymentsAdmin()
				v.Status = events.StatusRejected
				v.Reviews = []events.Reviewed{review("bob", 0, events.ReviewApprove, ""), review("carol", 1, events.ReviewReject, "use the runbook")}
				v.Rejection = &events.Rejected{Reason: "rejected by a reviewer", RejectedBy: "carol"}
				return v
			},
			steps: []string{"done: Submitted", "done: Policy requires approval", "done: Stage 1, owners: 1 approval(s) from payments-owners",
				"failed: Stage 2, security: 1 approval(s) from security", "failed: Rejected"},
			facts: []string{"Rejected by carol: use the runbook", "Rejected by carol."}},
		{name: "approved for a later start: policy checks it again then",
			view: func() requestview.View { return scheduledView(nil) },
			steps: []string{"done: Submitted", "done: Policy approved it without review", "current: Policy checks it again at its start",
				"pending: Granted on the target"}},
		{name: "the requester left engineers before the start: denied then, not granted",
			view: func() requestview.View {
				v := scheduledView(&events.StartChecked{Outcome: events.OutcomeApprovalRequired, Reasons: []string{"analytics-read: one approval from its owners"},
					Stages: []events.Stage{{Name: "owners", Groups: []string{"analytics-owners"}, MinApprovals: 1}}, RequesterGroups: []string{},
					GroupsFrom: events.GroupsFromDirectory, PolicyRevision: "sha256:abc"})
				v.Status = events.StatusDenied
				return v
			},
			steps: []string{"done: Submitted", "done: Policy approved it without review", "failed: Checked again at its start: no longer allowed, not granted"},
			facts: []string{"analytics-read: one approval from its owners", "The requester's groups then (from the directory): no groups."}},
		{name: "still allowed at the start: fulfilment is granting it",
			view: func() requestview.View {
				return scheduledView(&events.StartChecked{Allowed: true, Outcome: events.OutcomeAutoApproved, Reasons: []string{"low risk"},
					RequesterGroups: []string{"engineers"}, GroupsFrom: events.GroupsFromDirectory, PolicyRevision: "sha256:abc"})
			},
			steps: []string{"done: Submitted", "done: Policy approved it without review", "done: Checked again at its start: still allowed",
				"current: Fulfilment grants it on the target"},
			facts: []string{"The requester's groups then (from the directory): engineers."}},
		{name: "approved: fulfilment is granting it",
			view: func() requestview.View {
				v := paymentsAdmin()
				v.Status = events.StatusApproved
				v.Reviews = []events.Reviewed{review("bob", 0, events.ReviewApprove, ""), review("carol", 1, events.ReviewApprove, "")}
				return v
			},
			steps: []string{"done: Submitted", "done: Policy requires approval", "done: Stage 1, owners: 1 approval(s) from payments-owners",
				"done: Stage 2, security: 1 approval(s) from security", "current: Fulfilment grants it on the target"}},
		{name: "granted, with what the target shows, until it expires",
			view: func() requestview.View {
				v := granted(paymentsAdmin())
				v.Reviews = []events.Reviewed{review("bob", 0, events.ReviewApprove, ""), review("carol", 1, events.ReviewApprove, "")}
				return v
			},
			steps: []string{"done: Submitted", "done: Policy requires approval", "done: Stage 1, owners: 1 approval(s) from payments-owners",
				"done: Stage 2, security: 1 approval(s) from security", "done: Granted on postgres/payments role payments_admin", "pending: Expires"},
			facts: []string{"The target shows it present (member_of=payments_admin).", "Expires at 2030-01-02 11:00:00 UTC.", "Approved by bob, carol."}},
		{name: "ended early: revoked, and the target shows it gone",
			view: func() requestview.View {
				v := granted(paymentsAdmin())
				v.Status = events.StatusRevoked
				v.Revocation = &events.Revoked{Reason: events.RevokeEarly, Observed: events.Observed{Present: false}}
				return v
			},
			steps: []string{"done: Submitted", "done: Policy requires approval", "pending: Stage 1, owners: 1 approval(s) from payments-owners",
				"pending: Stage 2, security: 1 approval(s) from security", "done: Granted on postgres/payments role payments_admin", "done: Revoked (ended early)"},
			facts: []string{"The target shows it absent."}},
		{name: "access back on the target after the early revocation: the drift, and the revocation again",
			view: func() requestview.View {
				v := granted(paymentsAdmin())
				v.Decision.Stages, v.Status = nil, events.StatusRevoked
				v.Revocation = &events.Revoked{Reason: events.RevokeDrift, Observed: events.Observed{Present: false}}
				v.Drift = []events.DriftDetected{{Kind: events.DriftAfterRevocation, Connector: "postgres", TargetRef: "role grantline_x",
					Observed: events.Observed{Present: true, Detail: map[string]string{"member": "alice"}}, Action: events.DriftRevoke}}
				return v
			},
			steps: []string{"done: Submitted", "done: Policy requires approval", "done: Granted on postgres/payments role payments_admin",
				"done: Revoked (drift on the target)", "failed: Drift: the access was back on role grantline_x after its revocation"},
			facts: []string{"The target showed it present (member=alice).", "The revoker revokes it again (reason drift)."}},
		{name: "a live grant's access missing on the target",
			view: func() requestview.View {
				v := granted(paymentsAdmin())
				v.Decision.Stages = nil
				v.Drift = []events.DriftDetected{{Kind: events.DriftMissing, Connector: "postgres", TargetRef: "role grantline_x", Action: events.DriftRecorded}}
				return v
			},
			steps: []string{"done: Submitted", "done: Policy requires approval", "done: Granted on postgres/payments role payments_admin",
				"pending: Expires", "failed: Drift: the access is missing on role grantline_x"},
			facts: []string{"The target showed it absent.", "Recorded for the entitlement's owners; the grant stands until it ends."}},
		{name: "early revocation asked for, not yet done",
			view: func() requestview.View {
				v := granted(paymentsAdmin())
				v.Decision.Stages = nil
				v.RevocationDue = "early"
				return v
			},
			steps: []string{"done: Submitted", "done: Policy requires approval", "done: Granted on postgres/payments role payments_admin", "current: Revocation due (ended early)"}},
		{name: "fulfilment failed",
			view: func() requestview.View {
				v := paymentsAdmin()
				v.Decision = &events.PolicyDecided{Outcome: events.OutcomeAutoApproved, PolicyRevision: "sha256:abc"}
				v.Status = events.StatusFailed
				v.Failure = &events.FulfilmentFailed{ErrorClass: "target_unreachable", Message: "connection refused", Attempts: 5, Permanent: true}
				return v
			},
			steps: []string{"done: Submitted", "done: Policy approved it without review", "failed: Fulfilment failed"},
			facts: []string{"target_unreachable: connection refused (after 5 attempt(s))."}},
		{name: "an emergency grant still owes its post-review",
			view: func() requestview.View {
				v := granted(paymentsAdmin())
				v.Approvers, v.Emergency = nil, true
				v.Decision = &events.PolicyDecided{Outcome: events.OutcomeEmergency, PolicyRevision: "sha256:abc", EffectiveDurationSeconds: 1200,
					PostReview: &events.PostReview{Groups: []string{"security"}, Deadline: t0.Add(24 * time.Hour)}}
				return v
			},
			steps: []string{"done: Submitted", "done: Emergency access: granted without approval, reviewed afterwards",
				"done: Granted on postgres/payments role payments_admin", "pending: Expires", "current: Post-review by security"},
			facts: []string{"Emergency (break-glass) request.", "Access for 20m.", "Due by 2030-01-03 09:00:00 UTC."}},
		{name: "an emergency grant flagged by its post-review",
			view: func() requestview.View {
				v := granted(paymentsAdmin())
				v.Approvers = nil
				v.Decision = &events.PolicyDecided{Outcome: events.OutcomeEmergency, PolicyRevision: "sha256:abc",
					PostReview: &events.PostReview{Groups: []string{"security"}, Deadline: t0.Add(24 * time.Hour)}}
				v.PostReview = &events.PostReviewed{Reviewer: events.Principal{ID: "carol"}, Outcome: events.PostReviewFlagged, Reason: "no incident"}
				v.RevocationDue = "review_failed"
				return v
			},
			steps: []string{"done: Submitted", "done: Emergency access: granted without approval, reviewed afterwards",
				"done: Granted on postgres/payments role payments_admin", "current: Revocation due (post-review flagged it)", "failed: Post-review by security"},
			facts: []string{"Flagged by carol: no incident"}},
		{name: "a service account's credential",
			view: func() requestview.View {
				v := granted(paymentsAdmin())
				v.Decision.Stages = nil
				v.Requester.ID, v.Subject = "frank", events.RequestSubject{Kind: events.SubjectServiceAccount, ID: "svc-reporting", Owner: "payments-owners"}
				v.Grant.CredentialFingerprint = "sha256:f00"
				return v
			},
			steps: []string{"done: Submitted", "done: Policy requires approval", "done: Granted on postgres/payments role payments_admin", "pending: Expires"},
			facts: []string{"For service account svc-reporting, owned by payments-owners.", "A credential was issued (fingerprint sha256:f00); it can be retrieved once."}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			steps := Timeline(tt.view())
			var got []string
			var details []string
			for _, s := range steps {
				got = append(got, fmt.Sprintf("%s: %s", s.State, s.Title))
				details = append(details, s.Details...)
			}
			if strings.Join(got, "\n") != strings.Join(tt.steps, "\n") {
				t.Errorf("steps:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.steps, "\n"))
			}
			all := strings.Join(details, "\n")
			for _, f := range tt.facts {
				if !strings.Contains(all, f) {
					t.Errorf("no step says %q; details:\n%s", f, all)
				}
			}
		})
	}
}

func TestDuration(t *testing.T) {
	for secs, want := range map[int64]string{5: "5s", 60: "1m", 3600: "1h", 5400: "1h30m", 7230: "2h30s", 90: "1m30s"} {
		if got := Duration(secs); got != want {
			t.Errorf("Duration(%d) = %q, want %q", secs, got, want)
		}
	}
}
